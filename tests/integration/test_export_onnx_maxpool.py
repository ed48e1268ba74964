"""Padded max-pools get an explicit Pad before onnx2tf: exact in float, and int8 TFLite keeps sane scales.

The bug this guards against: onnx2tf pads a max-pool with -FLT_MAX (PADV2), int8 calibration then gives the tensor in
front of the pool a scale of ~1e36, and XNNPACK refuses the next convolution. ResNet's stem has this shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from restnet_compile.config.device import load_target
from restnet_compile.export.onnx_maxpool import explicit_maxpool_padding
from restnet_compile.export.tflite import TFLiteExporter
from restnet_compile.export.torch_onnx import export_onnx
from tests.tflite_scales import largest_scale


def _stem(relu: bool, pool: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)]
    if relu:
        layers.append(nn.ReLU())
    layers.append(pool)
    return nn.Sequential(*layers).eval()


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


CASES = {
    "relu-pad1": (True, nn.MaxPool2d(3, 2, 1), 15, "constant"),
    "no-relu-pad1": (False, nn.MaxPool2d(3, 2, 1), 15, "edge"),
    "no-relu-pad2-k5": (False, nn.MaxPool2d(5, 1, 2), 9, "edge"),
    "relu-ceil": (True, nn.MaxPool2d(3, 2, 0, ceil_mode=True), 14, "constant"),
    "no-relu-ceil-pad1": (False, nn.MaxPool2d(3, 2, 1, ceil_mode=True), 14, "edge"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rewrite_is_exact_and_removes_the_pool_padding(case: str, tmp_path: Path) -> None:
    relu, pool, size, mode = CASES[case]
    module = _stem(relu, pool)
    path = export_onnx(module, (3, size, size), tmp_path / "m.onnx")
    before = onnx.load(str(path))
    after = onnx.load(str(path))
    assert explicit_maxpool_padding(after) == 1
    onnx.checker.check_model(after, full_check=True)
    pads = [n for n in after.graph.node if n.op_type == "Pad"]
    assert len(pads) == 1 and onnx.helper.get_attribute_value(pads[0].attribute[0]) == mode.encode()
    (mp,) = [n for n in after.graph.node if n.op_type == "MaxPool"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in mp.attribute}
    assert attrs["pads"] == [0, 0, 0, 0] and attrs["ceil_mode"] == 0
    rng = np.random.default_rng(1)
    for _ in range(4):  # the export takes a batch of one
        x = rng.standard_normal((1, 3, size, size)).astype(np.float32) * 3
        want, got = _run(before, x), _run(after, x)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # exact: the padding never wins a window's max
        assert np.isfinite(got).all()


def test_unpadded_pool_is_left_alone(tmp_path: Path) -> None:
    path = export_onnx(_stem(True, nn.MaxPool2d(2, 2)), (3, 8, 8), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    before = model.SerializeToString()
    assert explicit_maxpool_padding(model) == 0
    assert model.SerializeToString() == before


def test_int8_tflite_of_a_resnet_stem_has_sane_scales_and_runs_on_xnnpack(tmp_path: Path) -> None:
    """Before the rewrite the tensor in front of the pool had scale ~1.3e36 and XNNPACK failed to prepare."""
    from ai_edge_litert.interpreter import Interpreter

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 16, 7, 2, 3),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 10, 1),
        nn.Flatten(2),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
    ).eval()
    shape = (3, 32, 32)
    calib = np.random.default_rng(0).random((16, *shape), dtype=np.float32)
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    exported = TFLiteExporter().export({"stem": module}, shape, calib, load_target("tflite-int8"), out, work)
    blob = (out / exported["stem"].file).read_bytes()
    assert 0 < largest_scale(blob) < 1e3, largest_scale(blob)
    it = Interpreter(model_content=blob)  # default delegates: XNNPACK
    runner = it.get_signature_runner("stem")
    x = np.transpose(calib[:1], (0, 2, 3, 1))
    detail = runner.get_input_details()["input"]
    scale, zero = detail["quantization"]
    q = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    (logits,) = runner(input=q).values()
    assert logits.shape == (1, 10)


class _TwoPools(nn.Module):
    """Two padded pools reading the same tensor (an Inception-style branch): each needs its own Pad."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.a, self.b = nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.a(y) + self.b(y)


def test_pools_sharing_an_input_get_one_pad_each(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export_onnx(_TwoPools().eval(), (3, 9, 9), tmp_path / "m.onnx")
    before, after = onnx.load(str(path)), onnx.load(str(path))
    assert explicit_maxpool_padding(after) == 2
    onnx.checker.check_model(after, full_check=True)
    assert sum(n.op_type == "Pad" for n in after.graph.node) == 2
    x = np.random.default_rng(2).standard_normal((1, 3, 9, 9)).astype(np.float32)
    np.testing.assert_array_equal(_run(after, x), _run(before, x))
