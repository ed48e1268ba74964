"""The ONNX export builds torchlib's registry once per process and leaves torch's exporter as it found it."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.onnx._internal.exporter import _registration

from restnet_compile.export import torch_onnx


def test_exports_share_one_registry_and_restore_the_exporter(tmp_path: Path) -> None:
    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    first = torch_onnx.export_onnx(model, (1, 8, 8), tmp_path / "a.onnx")
    built = dict(torch_onnx._REGISTRIES)
    second = torch_onnx.export_onnx(model, (1, 8, 8), tmp_path / "b.onnx")
    assert built and torch_onnx._REGISTRIES == built  # the second export built no registry of its own
    assert first.read_bytes() == second.read_bytes()
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is original
