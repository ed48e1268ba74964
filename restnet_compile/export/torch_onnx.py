"""PyTorch -> ONNX with the dynamo exporter (the legacy one turns GELU into Erf, which TFLite int8 rejects)."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 18


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
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), torch.no_grad():
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
