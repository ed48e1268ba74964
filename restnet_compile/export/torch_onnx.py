"""PyTorch -> ONNX with the dynamo exporter (the legacy one turns GELU into Erf, which TFLite int8 rejects)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 18

#: torchlib's registries by their arguments, built once per process (see :func:`_one_torchlib_registry`).
_REGISTRIES: dict[tuple[Any, ...], Any] = {}


@contextlib.contextmanager
def _one_torchlib_registry() -> Iterator[None]:
    """Within the block, ``torch.onnx.export`` reuses one registry of torchlib's ONNX functions.

    The dynamo exporter builds that registry again on every call (``ONNXRegistry.from_torchlib``: 1.1 s, a third
    of exporting a small model), and never changes it when no custom translation table is given (none is). The
    classmethod is wrapped for the block and restored after it; where torch's internals differ, nothing is wrapped.
    """
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    cls: Any = getattr(_registration, "ONNXRegistry", None)
    original = None if cls is None else cls.__dict__.get("from_torchlib")
    if cls is None or not isinstance(original, classmethod):
        yield
        return
    build = original.__func__

    def from_torchlib(klass: type, *args: Any, **kwargs: Any) -> Any:
        key = (klass, args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = build(klass, *args, **kwargs)
        return _REGISTRIES[key]

    cls.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        cls.from_torchlib = original


def export_onnx(module: nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    """Export ``module`` for a batch of one input of ``input_shape`` (an image or a feature) to a self-contained ONNX
    file at ``path``."""
    module.eval()
    example = (torch.zeros(1, *input_shape),)
    sink = io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            torch.no_grad(),
            _one_torchlib_registry(),
        ):
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamo=True,
                opset_version=OPSET,
                external_data=False,
            )
    finally:
        logger.setLevel(level)  # the caller's logging as it was
    return path
