"""Stitching layers (adapters), registered by name, each with a closed-form least-squares initialisation."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile._util.registry import Registry
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import FeatureSpec


class Adapter(nn.Module, ABC):
    """Base class: maps a feature of ``src`` spec to a feature of ``dst`` spec."""

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__()
        why = self.incompatibility(src, dst)
        if why:
            raise BadInputError(why)
        self.src = src
        self.dst = dst

    @classmethod
    @abstractmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        """Why this adapter cannot join ``src`` to ``dst`` (None when it can)."""

    @abstractmethod
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        """Set the weights to the ridge least-squares fit of ``y`` from ``x``; return the fit's R^2."""

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter's parameter-free first stage (``forward(x) == trainable(fixed(x))``); identity by default.

        Tuning on cached features applies it once to the cache instead of once per step.
        """
        return x

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        """The rest of the adapter, applied to ``fixed(x)``."""
        return self(x)


ADAPTERS: Registry[type[Adapter]] = Registry("adapter")


def solve_least_squares(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression with bias, in closed form: ``y ~ x @ w + b``.

    Args:
        x: ``(samples, in_features)``.
        y: ``(samples, out_features)``.
        ridge: Tikhonov factor relative to the mean diagonal of ``x^T x`` (keeps the solve well posed).

    Returns:
        ``w`` of shape ``(in_features, out_features)``, ``b`` of shape ``(out_features,)`` and the fit's R^2.
    """
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
    b = my - mx @ w
    resid = ((yc - xc @ w) ** 2).sum()
    total = max(float((yc**2).sum()), 1e-12)
    return w, b, float(1.0 - resid / total)


@ADAPTERS.register("conv1x1")
class Conv1x1Adapter(Adapter):
    """map -> map: resize to the destination grid (integer-factor average pooling), then a 1x1 convolution."""

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        if src.kind != "map" or dst.kind != "map":
            return f"adapter conv1x1 joins map -> map, not {src.describe()} -> {dst.describe()}"
        (sh, sw), (dh, dw) = src.resolution, dst.resolution  # type: ignore[misc]
        if sh % dh or sw % dw or sh // dh != sw // dw:
            return f"adapter conv1x1 cannot resize {src.describe()} to {dst.describe()}: needs an integer down-factor"
        return None

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        self.pool = src.shape[1] // dst.shape[1]
        self.conv = nn.Conv2d(src.channels, dst.channels, 1)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The resize to the destination grid (no parameters)."""
        return self._resize(x)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter on an already resized map; subclasses override this, not ``forward``."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trainable(self._resize(x))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        xs = self._resize(x).permute(0, 2, 3, 1).reshape(-1, self.src.channels).numpy()
        ys = y.permute(0, 2, 3, 1).reshape(-1, self.dst.channels).numpy()
        w, b, r2 = solve_least_squares(xs, ys, ridge)
        self.conv.weight.copy_(torch.from_numpy(w.T.astype(np.float32))[:, :, None, None])
        self.conv.bias.copy_(torch.from_numpy(b.astype(np.float32)))
        return r2


# One adapter per kind of join; the planner proposes the first that can join the pair. ``tokens-to-map-mlp``
# (unpatchify.py) is planned for tokens -> map; ``tokens-to-map-cls`` and the plain ``tokens-to-map`` stay
# registered. Richer map -> map adapters (maps.py) are chosen by ``tune.adapter`` and replace ``conv1x1``
# where they can join the pair (see ``choose_adapter``).
BASE_ADAPTERS = ("conv1x1", "map-to-tokens", "token-linear", "tokens-to-map-mlp", "tokens-to-map-cls", "tokens-to-map")


def adapter_for(src: FeatureSpec, dst: FeatureSpec) -> str | None:
    """The plain registered adapter that can join ``src`` to ``dst``, or None when none can."""
    for name in BASE_ADAPTERS:
        if ADAPTERS.get(name).incompatibility(src, dst) is None:
            return name
    return None


def choose_adapter(preferred: str, planned: str, src: FeatureSpec, dst: FeatureSpec) -> str:
    """``preferred`` when it can join ``src`` to ``dst`` (``auto``: keep the planned one), else ``planned``.

    Raises:
        BadInputError: ``preferred`` is neither ``auto`` nor a registered adapter (the message lists them).
    """
    if preferred == "auto":
        return planned
    cls = ADAPTERS.get(preferred)
    return preferred if cls.incompatibility(src, dst) is None else planned
