"""Model sources beyond the demo zoo: torchvision and timm architectures and a user's own model.

* torchvision: every classification architecture of ``torchvision.models``, as ``torchvision:NAME``,
  ``torchvision.models:NAME`` or the bare name (``shufflenet_v2_x0_5``) -- built with random weights and loaded from
  a local state_dict file (nothing is downloaded), then split by the family's registered split function when one
  recognises it, else by the generic traced split.
* timm: ``timm:NAME`` (see :mod:`restnet_compile.models.timm_source`), split by tracing.
* A user's model: ``path/to/file.py:ClassName`` or ``package.module:factory``. The attribute is called with no
  arguments and returns an ``nn.Module``: a registered split function splits it when one recognises it and its blocks
  reproduce the model, else the generic traced split (:mod:`restnet_compile.models.fx_split`).

Weights are read by :mod:`restnet_compile.models.checkpoints`: safetensors without pickle, other files with
``torch.load(weights_only=True)``, so a checkpoint that carries code is refused.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.checkpoints import load_checkpoint
from restnet_compile.models.fx_split import DEFAULT_MAX_BLOCKS
from restnet_compile.models.splitters import split_model
from restnet_compile.models.timm_source import create_timm, is_timm_spec
from restnet_compile.models.tv import classification_names, import_torchvision, shim_for_user_code, torchvision_arch

TORCHVISION_DEFAULT_SHAPE = (3, 224, 224)


@dataclass(frozen=True)
class ModelOptions:
    """How to instantiate a model source.

    Attributes:
        weights: A state_dict file of the original model (torchvision / timm / user keys) or a timm / hub weights
            folder, or None.
        input_shape: ``(C, H, W)`` of one input image; None for the source's default.
        num_classes: Width of the classifier; None for the source's default (1000 for torchvision).
        split: Module or graph node names to cut after (the generic split), or None for the default rule.
        max_blocks: Most blocks the generic split's default rule makes.
    """

    weights: Path | None = None
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    split: tuple[str, ...] | None = None
    max_blocks: int = DEFAULT_MAX_BLOCKS


def torchvision_factory(arch: str) -> Callable[[str, ModelOptions], nn.Module]:
    """A source for torchvision architecture ``arch`` (random init, then the local weights if given)."""

    def build(name: str, opts: ModelOptions) -> nn.Module:
        tv = import_torchvision()
        shape = opts.input_shape or TORCHVISION_DEFAULT_SHAPE
        kwargs: dict[str, object] = {"weights": None, "num_classes": opts.num_classes or 1000}
        if arch.startswith("vit_"):
            if shape[1] != shape[2]:
                raise BadInputError(f"model {name}: layer embed needs square images, got {shape[1]}x{shape[2]}")
            kwargs["image_size"] = shape[1]
        if arch.startswith("maxvit_"):
            kwargs["input_size"] = (shape[1], shape[2])  # its relative position tables are made for one size
        try:
            module = tv.models.get_model(arch, **kwargs)
        except Exception as exc:
            size = "x".join(map(str, shape))
            raise BadInputError(f"model {name}: torchvision cannot create it for input {size}: {exc}") from None
        if opts.weights is not None:
            load_checkpoint(module, Path(opts.weights), name)
        return module

    return build


#: Name prefix of the modules user files are imported as (an executor sends them by value: workers lack the file).
USER_MODULE_PREFIX = "restnet_user_"


def load_user_object(spec: str) -> Callable[[], object]:
    """Resolve ``path/to/file.py:Name`` or ``package.module:name`` to the named attribute.

    Raises:
        BadInputError: the file or module cannot be imported, or has no such attribute.
    """
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise BadInputError(f"model {spec}: expected path/to/file.py:ClassName or package.module:factory")
    shim_for_user_code()  # the file or module may import torchvision itself
    try:
        if where.endswith(".py") or "/" in where:
            path = Path(where)
            if not path.is_file():
                raise BadInputError(f"model {spec}: file {path} does not exist")
            mod_name = f"{USER_MODULE_PREFIX}{abs(hash(str(path.resolve())))}"
            mod_spec = importlib.util.spec_from_file_location(mod_name, path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"model {spec}: cannot import {where}: {type(exc).__name__}: {exc}") from None
    obj = getattr(module, attr, None)
    if not callable(obj):
        raise BadInputError(f"model {spec}: {where} has no class or factory {attr!r}")
    return obj


def user_model(spec: str, opts: ModelOptions) -> nn.Module:
    """Instantiate a user's model from ``spec`` and load its state_dict, if any."""
    factory = load_user_object(spec)
    try:
        module = factory()
    except Exception as exc:
        raise BadInputError(f"model {spec}: calling {spec.rpartition(':')[2]}() failed: {exc}") from None
    if not isinstance(module, nn.Module):
        raise BadInputError(f"model {spec}: {spec.rpartition(':')[2]}() returned {type(module).__name__}, not a module")
    if opts.weights is not None:
        load_checkpoint(module, Path(opts.weights), spec)
    return module


def user_input_shape(module: nn.Module, spec: str, opts: ModelOptions) -> tuple[int, int, int]:
    """The input shape of a user's model: the option, else its ``input_shape`` attribute."""
    shape = opts.input_shape or getattr(module, "input_shape", None)
    if shape is None:
        raise BadInputError(f"model {spec}: input shape unknown; set input_shape (C, H, W) in the build config")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def create_user_model(spec: str, opts: ModelOptions) -> BlockSequence:
    """A user's model as a ``BlockSequence``."""
    module = user_model(spec, opts)
    shape = user_input_shape(module, spec, opts)
    return split_model(module, spec, shape, opts.split, opts.max_blocks, opts.num_classes)


def create_timm_model(spec: str, opts: ModelOptions) -> BlockSequence:
    """A ``timm:NAME`` model as a ``BlockSequence`` that keeps timm's ``pretrained_cfg``."""
    module, shape = create_timm(spec, opts.weights, opts.input_shape, opts.num_classes)
    seq = split_model(module, spec, shape, opts.split, opts.max_blocks, opts.num_classes)
    seq.pretrained_cfg = dict(getattr(module, "pretrained_cfg"))  # noqa: B009 - a timm attribute torch does not declare
    return seq


def is_user_spec(name: str) -> bool:
    """True for ``file.py:Name`` / ``module:name`` specs: a colon, but not ``timm:`` or ``torchvision[.models]:``."""
    return ":" in name and not is_timm_spec(name) and torchvision_arch(name) is None


def close_matches(name: str, choices: list[str]) -> str:
    """``close matches: a, b`` for ``name`` among ``choices`` (empty when none is close)."""
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f"close matches: {', '.join(close)}" if close else ""


def check_torchvision_arch(spec: str, arch: str) -> None:
    """Refuse a name that is not a torchvision classification architecture, listing close matches.

    Raises:
        BadInputError: unknown architecture.
    """
    known = classification_names()
    if arch not in known:
        hint = close_matches(arch, known) or "see torchvision.models.list_models(module=torchvision.models)"
        raise BadInputError(f"model {spec}: torchvision has no classification model {arch!r}; {hint}")
