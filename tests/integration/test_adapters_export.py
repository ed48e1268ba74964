"""Richer adapters exported: their ONNX graphs use only plain ops, and the int8 path to TFLite Micro."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching import ADAPTERS

RICH = ["conv-bn-relu"]


def _tiny_stitched(name: str) -> nn.Module:
    torch.manual_seed(0)
    adapter = ADAPTERS.get(name)(FeatureSpec("map", (4, 8, 8)), FeatureSpec("map", (6, 4, 4)))
    adapter.least_squares_init(torch.randn(16, 4, 8, 8), torch.relu(torch.randn(16, 6, 4, 4)))
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), adapter, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)
    ).eval()


@pytest.mark.parametrize("name", RICH)
def test_rich_adapter_onnx_graph_uses_only_plain_ops(name: str, tmp_path: Path) -> None:
    import onnx

    from restnet_compile.export.torch_onnx import export_onnx

    path = export_onnx(_tiny_stitched(name), (1, 8, 8), tmp_path / f"{name}.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    plain = {
        "Conv",
        "Relu",
        "Add",
        "AveragePool",
        "BatchNormalization",
        "GlobalAveragePool",
        "ReduceMean",
        "Flatten",
        "Reshape",
        "Gemm",
        "MatMul",
        "Identity",
        "Squeeze",
        "Unsqueeze",
    }
    assert ops <= plain, ops - plain


@pytest.mark.slow
def test_rich_adapters_export_to_tflite_micro_int8(tmp_path: Path) -> None:
    """The whole int8 path (ONNX -> onnx2tf -> TFLite full-int8); the exporter refuses ops TFLM lacks."""
    from restnet_compile.config.device import load_target
    from restnet_compile.export import EXPORTERS
    from restnet_compile.export.ops import tflite_ops

    nets = {name.replace("-", "_"): _tiny_stitched(name) for name in RICH}
    calib = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    out = tmp_path / "out"
    out.mkdir()
    done = EXPORTERS.get("tflm")().export(nets, (1, 8, 8), calib, load_target("tflm-int8"), out, tmp_path)
    for key, exported in done.items():
        files = [s.file for s in exported.chain] or [exported.file]  # TFLite Micro runs a chain of segment files
        ops = {op for f in files for op in next(iter(tflite_ops((out / f).read_bytes()).values()))}
        assert "CONV_2D" in ops and ops <= set(load_target("tflm-int8").ops_allow or ops), (key, ops)
