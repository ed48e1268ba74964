"""Slow (`make test-slow`): real jetson and phone bundles for a torchvision pair at 224 px with random weights.

The pair and its data come from ``bench/tv_pair.py``: local random-init checkpoints (nothing is downloaded), MNIST
digits scaled to 224 px, ``selection: feasible``, no adapter tuning (random weights: nothing to tune for) and a 33 ms
application budget on the jetson profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from tv_pair import app_profile, app_target, build_config

from tests.tflite_scales import largest_scale

pytestmark = pytest.mark.slow


def _build_224(device: str, budget: str, target: str, tmp_path: Path) -> api.BuildResult:
    """ResNet-50 -> MobileNetV3-Large at 224 px, 2 candidates, no tuning, for a copied profile and target."""
    cfg = build_config(
        "resnet50",
        "mobilenet_v3_large",
        tmp_path,
        str(app_profile(device, budget, tmp_path)),
        epochs=0,
        target=str(app_target(target, tmp_path)),
        plan={"max_candidates": 2},
    )
    return api.build(BuildConfig.model_validate(cfg), tmp_path / "out")


def test_jetson_bundle_for_a_224px_torchvision_pair(tmp_path: Path) -> None:
    # random weights: near-tied classes, so top-1 agreement is rounding (recorded, not enforced)
    result = _build_224("jetson", "33ms", "onnx-fp16", tmp_path)
    m = result.manifest
    assert m.input.shape == (3, 224, 224) and m.target.name == "onnx-fp16-random-weights"
    assert m.selection is not None and m.selection.mode == "feasible" and m.selection.min_latency_gain is None
    shipped = m.shipped()
    assert {"large", "small"} <= {v.id for v in shipped}
    for v in shipped:
        assert v.latency_ms <= m.profile.latency_budget_ms
        assert v.parity is not None and v.parity.max_abs_diff <= 0.05
        assert (result.bundle_dir / f"{v.id}.onnx").is_file()
    assert (result.bundle_dir / "trtexec.sh").is_file() and (result.bundle_dir / "weights.bin").is_file()


def test_phone_int8_bundle_for_a_224px_torchvision_pair_runs_on_xnnpack(tmp_path: Path) -> None:
    """ResNet-50's padded max-pool once gave its stem an int8 scale of 1.3e36 and XNNPACK refused the stitch."""
    from ai_edge_litert.interpreter import Interpreter

    # 70 ms: the 2 stitches the planner proposes take 50 and 68 ms
    result = _build_224("phone", "70ms", "tflite-int8", tmp_path)
    m = result.manifest
    shipped = {v.id: v for v in m.shipped()}
    assert "small" in shipped and sum(v.kind == "stitched" for v in shipped.values()) == 2
    blob = (result.bundle_dir / "variants.tflite").read_bytes()
    assert 0 < largest_scale(blob) < 1e3
    it = Interpreter(model_content=blob)  # default delegates: XNNPACK, which refused the stitch before
    for vid, v in shipped.items():
        assert v.latency_ms <= m.profile.latency_budget_ms
        assert v.parity is not None and 0 <= v.parity.top1_agreement <= 1
        runner = it.get_signature_runner(vid)
        (out,) = runner(input=np.zeros((1, 224, 224, 3), np.int8)).values()
        assert out.shape == (1, 10)
