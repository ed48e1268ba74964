"""timm models by name: ``timm:NAME`` (``timm:resnet18``, ``timm:deit_tiny_patch16_224.fb_in1k``).

The model is created with ``pretrained=False`` (nothing is downloaded: the Hugging Face hub is switched to offline
mode while timm is imported and used) and ``num_classes`` from the options, else from the weights folder's
``config.json``, else timm's default. A grey-scale input shape (``1 x H x W``) sets ``in_chans``; models that take a
fixed image size (ViT, DeiT, Swin) are created for the options' size. Weights come from a local file or a folder in
the layout timm and the hub save (``model.safetensors`` or ``pytorch_model.bin`` beside ``config.json``, whose
``pretrained_cfg`` then replaces timm's defaults). The model keeps timm's ``pretrained_cfg`` (input size, mean, std,
interpolation, crop), read through :func:`restnet_compile.models.preprocess_meta.preprocess_meta`.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from restnet_compile.errors import BadInputError
from restnet_compile.models.checkpoints import load_checkpoint

TIMM_PREFIX = "timm:"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def is_timm_spec(name: str) -> bool:
    """True for ``timm:NAME``."""
    return name.startswith(TIMM_PREFIX)


@contextmanager
def hub_offline() -> Iterator[None]:
    """Put the Hugging Face hub in offline mode (environment and an imported ``huggingface_hub``), then restore."""
    saved = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    constants: Any = sys.modules.get("huggingface_hub.constants")
    saved_flag = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_flag


def import_timm() -> ModuleType:
    """The ``timm`` module, imported offline after the torchvision op shim it needs on the CPU torch build."""
    from restnet_compile.models.tv import import_torchvision

    import_torchvision()
    with hub_offline():
        return importlib.import_module("timm")


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f"close matches: {', '.join(close)}" if close else "see timm.list_models()"


def check_name(timm: ModuleType, spec: str, name: str) -> None:
    """Refuse an architecture or pretrained tag timm does not have, listing close matches.

    Raises:
        BadInputError: unknown architecture or tag.
    """
    arch, _, tag = name.partition(".")
    known = timm.list_models()
    if arch not in known:
        raise BadInputError(f"model {spec}: timm has no architecture {arch!r}; {_close(arch, known)}")
    if tag:
        tags = timm.list_models(arch, pretrained=True)
        if name not in tags:
            raise BadInputError(f"model {spec}: timm has no tag {tag!r} for {arch}; {_close(name, tags)}")


def folder_config(weights: Path | None, spec: str, arch: str) -> dict:
    """``config.json`` of a timm / hub weights folder (empty without one), checked to name ``arch``.

    Raises:
        BadInputError: unreadable ``config.json``, or one of another architecture.
    """
    if weights is None or not Path(weights).is_dir() or not (Path(weights) / "config.json").is_file():
        return {}
    path = Path(weights) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"model {spec}: {path} is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise BadInputError(f"model {spec}: {path} holds {type(config).__name__}, not a mapping of settings")
    theirs = str(config.get("architecture", arch)).partition(".")[0]
    if theirs != arch:
        raise BadInputError(f"model {spec}: {path} describes architecture {theirs!r}, not {arch!r}")
    return config


def create_timm(
    spec: str, weights: Path | None, input_shape: tuple[int, int, int] | None, num_classes: int | None
) -> tuple[nn.Module, tuple[int, int, int]]:
    """The timm model ``spec`` with its weights loaded, and the input shape it takes.

    Raises:
        BadInputError: unknown name, a model timm cannot create with these options, or weights that do not fit.
    """
    name = spec[len(TIMM_PREFIX) :]
    timm = import_timm()
    check_name(timm, spec, name)
    arch = name.partition(".")[0]
    config = folder_config(weights, spec, arch)
    default = timm.models.get_pretrained_cfg(name)
    default_size = tuple(default.input_size) if default is not None else (3, 224, 224)
    shape = tuple(input_shape or config.get("pretrained_cfg", {}).get("input_size") or default_size)
    kwargs: dict[str, object] = {"pretrained": False}
    if num_classes or config.get("num_classes"):
        kwargs["num_classes"] = int(num_classes or config["num_classes"])
    if shape[0] != 3:
        kwargs["in_chans"] = shape[0]
    if default is not None and default.fixed_input_size and shape[1:] != default_size[1:]:
        kwargs["img_size"] = tuple(shape[1:])
    try:
        with hub_offline():
            module = timm.create_model(name, **kwargs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        size = "x".join(map(str, shape))
        raise BadInputError(f"model {spec}: timm cannot create it for input {size}: {first}") from None
    module.pretrained_cfg = {**dict(getattr(module, "pretrained_cfg", {}) or {}), **config.get("pretrained_cfg", {})}
    if weights is not None:
        load_checkpoint(module, Path(weights), spec)
    return module, shape
