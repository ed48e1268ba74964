"""Exact GELU (``nn.GELU()``, as in timm's transformers) exports to TFLite: ONNX's Erf has no TFLite builtin, so it is
written as a polynomial of builtins, exact to float rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from restnet_compile.config.device import load_target
from restnet_compile.export.ops import tflite_ops
from restnet_compile.export.tflite import BUNDLE_FILE, TFLiteExporter
from restnet_compile.runtime.backends import LiteRTBackend


def test_exact_gelu_exports_to_float_tflite_within_rounding(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, 2, 1), nn.GELU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 32), nn.GELU(), nn.Linear(32, 10)
    ).eval()
    images = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        reference = model(images).numpy()
    work = tmp_path / "work"
    work.mkdir()
    TFLiteExporter().export({"v": model}, (1, 28, 28), images.numpy(), load_target("tflite-fp32"), tmp_path, work)
    (ops,) = tflite_ops((tmp_path / BUNDLE_FILE).read_bytes()).values()
    assert "EXP" in ops and not any("ERF" in op or "FLEX" in op for op in ops), ops
    nhwc = np.ascontiguousarray(images.numpy().transpose(0, 2, 3, 1))
    out = LiteRTBackend(tmp_path).run(BUNDLE_FILE, "v", nhwc)
    assert np.abs(out - reference).max() < 1e-5
