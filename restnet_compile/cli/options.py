"""Option groups shared by the verbs that read a build config (``build``, ``analyze``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Model and data options: (flag, config field, help).
_MODEL_OPTIONS = (
    ("--large", "large", "Large model (prefix donor): demo or torchvision name, timm:NAME or path/file.py:Class."),
    ("--small", "small", "Small model (suffix donor): demo or torchvision name, timm:NAME or path/file.py:Class."),
    ("--large-weights", "large_weights", "Weights of the large model: .safetensors, .pt/.pth/.bin or a folder."),
    ("--small-weights", "small_weights", "Weights of the small model."),
    (
        "--data",
        "dataset",
        "Dataset: mnist5k, mnist10k, folder:DIR, npz:FILE, idx:DIR (MNIST-style IDX files), a directory or .npz.",
    ),
)


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """``3,64,64`` or ``3x64x64`` as a (C, H, W) tuple; None stays None."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"expected C,H,W such as 3,64,64; got {text!r}", param_hint="--input-shape")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def model_options(command: F) -> F:
    """Add the model, weights, data, input-shape, class-count and bad-images options and the build config file."""
    # click lists options in the reverse order of decoration
    command = click.option("--num-classes", type=int, help="Classifier width of torchvision / timm / user models.")(
        command
    )
    command = click.option(
        "--bad-images",
        type=click.Choice(["fail", "skip"]),
        help="An image file of a folder dataset that cannot be decoded stops the build, naming it (fail, the "
        "default), or is left out (skip). Config field: bad_images.",
    )(command)
    command = click.option("--input-shape", help="C,H,W of torchvision / timm / user models, e.g. 3,64,64.")(command)
    command = click.option(
        "--pairs",
        type=click.Choice(["neighbours", "all"]),
        help="Which anchors of a family are stitched: each with its neighbours in FLOPs (default) or every two. "
        "Config field: pairs.",
    )(command)
    command = click.option(
        "--model",
        "models",
        multiple=True,
        metavar="NAME[=WEIGHTS]",
        help="An anchor of a family, repeated (2 to 8; ordered by measured FLOPs, stitched along neighbours), instead "
        "of --large / --small. Config field: models.",
    )(command)
    for flag, field, text in reversed(_MODEL_OPTIONS):
        command = click.option(flag, field, help=text)(command)
    return click.option("--config", "config_path", type=click.Path(path_type=Path), help="Build config YAML.")(command)


def check_names_early(config: Any) -> None:
    """Refuse an unknown profile, target or model name, or an invalid profile or target file, before torch or
    TensorFlow is imported (seconds, not a minute)."""
    from restnet_compile.config.device import load_profile, load_target
    from restnet_compile.config.names import check_names

    check_names(config.profile_names(), config.target, tuple(m.name for m in config.anchor_specs()))
    for name in config.profile_names():
        load_profile(name)
    if config.target is not None:
        load_target(config.target)


def config_overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the :func:`model_options` values out of a command's ``kwargs`` as build-config overrides."""
    out = {field: kwargs.pop(field) for _flag, field, _text in _MODEL_OPTIONS}
    out["input_shape"] = parse_shape(kwargs.pop("input_shape"))
    out["num_classes"] = kwargs.pop("num_classes")
    out["bad_images"] = kwargs.pop("bad_images")
    out["models"] = list(kwargs.pop("models")) or None
    out["pairs"] = kwargs.pop("pairs")
    return out
