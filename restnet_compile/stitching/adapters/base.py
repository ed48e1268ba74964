"""The adapter base class and its registry; each registry entry carries what the planner needs to know.

An adapter is registered with :func:`register_adapter`, which records on the class the kinds of feature it joins
(``map`` / ``tokens``, source then destination) and its planning priority: the planner proposes, for each pair of
blocks, the adapter of lowest priority that can join them; ``None`` means never planned (chosen only through
``tune.adapter``, see :func:`choose_adapter`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
from torch import nn

from restnet_compile._util.registry import Registry
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import FeatureKind, FeatureSpec


class Adapter(nn.Module, ABC):
    """Base class: maps a feature of ``src`` spec to a feature of ``dst`` spec.

    Attributes:
        name: Registered name (set by :func:`register_adapter`).
        joins: Feature kinds it joins, ``(source, destination)``.
        plan_priority: Rank among the adapters the planner proposes (lowest first); None: never planned.
    """

    name: ClassVar[str]
    joins: ClassVar[tuple[FeatureKind, FeatureKind]]
    plan_priority: ClassVar[int | None] = None

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__()
        why = self.incompatibility(src, dst)
        if why:
            raise BadInputError(why)
        self.src = src
        self.dst = dst

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        """Why this adapter cannot join ``src`` to ``dst`` (None when it can)."""
        if (src.kind, dst.kind) != cls.joins:
            want = " -> ".join(cls.joins)
            return f"adapter {cls.name} joins {want}, not {src.describe()} -> {dst.describe()}"
        return cls.shape_problem(src, dst)

    @classmethod
    @abstractmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        """Why the shapes of ``src`` and ``dst`` (of the kinds in :attr:`joins`) cannot be joined (None: they can)."""

    @abstractmethod
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        """Set the weights to the ridge least-squares fit of ``y`` from ``x``; return the fit's R^2.

        ``x`` may be the source features or ``fixed(x)`` (the build passes the latter, computed batch by batch, so
        the fit holds the resized features only); both give the same fit.
        """

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter's parameter-free first stage (``forward(x) == trainable(fixed(x))``); identity by default.

        Tuning on cached features applies it once to the cache instead of once per step.
        """
        return x

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        """The rest of the adapter, applied to ``fixed(x)``."""
        return self(x)


ADAPTERS: Registry[type[Adapter]] = Registry("adapter")
A = TypeVar("A", bound=type[Adapter])


def register_adapter(
    name: str, joins: tuple[FeatureKind, FeatureKind], plan_priority: int | None = None
) -> Callable[[A], A]:
    """Class decorator: register an adapter as ``name`` with its planning metadata (see the module doc)."""

    def deco(cls: A) -> A:
        cls.name, cls.joins, cls.plan_priority = name, joins, plan_priority
        ADAPTERS.register(name)(cls)
        return cls

    return deco


def adapter_for(src: FeatureSpec, dst: FeatureSpec) -> str | None:
    """The planned adapter for ``src`` -> ``dst``: the one of lowest priority that can join them (None: none can)."""
    planned = [ADAPTERS.get(n) for n in ADAPTERS.names() if ADAPTERS.get(n).plan_priority is not None]
    for cls in sorted(planned, key=lambda c: c.plan_priority or 0):
        if cls.incompatibility(src, dst) is None:
            return cls.name
    return None


def why_no_adapter(src: FeatureSpec, dst: FeatureSpec) -> str:
    """Why no planned adapter joins ``src`` to ``dst``, in one line: the shape problems of those of their kinds."""
    planned = [ADAPTERS.get(n) for n in ADAPTERS.names() if ADAPTERS.get(n).plan_priority is not None]
    same_kinds = [cls for cls in planned if cls.joins == (src.kind, dst.kind)]
    problems = [p for p in (cls.shape_problem(src, dst) for cls in same_kinds) if p]
    if problems:
        return "; ".join(problems)
    return f"no adapter joins {src.kind} -> {dst.kind} ({src.describe()} -> {dst.describe()})"


def choose_adapter(preferred: str, planned: str, src: FeatureSpec, dst: FeatureSpec) -> str:
    """``preferred`` when it can join ``src`` to ``dst`` (``auto``: keep the planned one), else ``planned``.

    Raises:
        BadInputError: ``preferred`` is neither ``auto`` nor a registered adapter (the message lists them).
    """
    if preferred == "auto":
        return planned
    cls = ADAPTERS.get(preferred)
    return preferred if cls.incompatibility(src, dst) is None else planned
