"""Slow (`make test-slow`): a real jetson bundle for a torchvision pair at 224 px with random weights.

The pair and its data come from ``bench/tv_pair.py``: local random-init checkpoints (nothing is downloaded), MNIST
digits scaled to 224 px, ``selection: feasible``, no adapter tuning (random weights: nothing to tune for) and a 33 ms
application budget on the jetson profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.buildconfig import BuildConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from tv_pair import app_profile, build_config

pytestmark = pytest.mark.slow


def test_jetson_bundle_for_a_224px_torchvision_pair(tmp_path: Path) -> None:
    profile = app_profile("jetson", "33ms", tmp_path)
    cfg = BuildConfig.model_validate(
        build_config("resnet50", "mobilenet_v3_large", tmp_path, str(profile), epochs=0, plan={"max_candidates": 2})
    )
    result = api.build(cfg, tmp_path / "out")
    m = result.manifest
    assert m["input"]["shape"] == [3, 224, 224] and m["target"]["name"] == "onnx-fp16"
    assert m["selection"]["mode"] == "feasible" and m["selection"]["min_latency_gain"] is None
    shipped = [v for v in m["variants"] if v["selected"]]
    assert {"large", "small"} <= {v["id"] for v in shipped}
    for v in shipped:
        assert v["latency_ms"] <= m["profile"]["latency_budget_ms"]
        assert v["parity"] is not None and v["parity"]["max_abs_diff"] <= 0.05
        assert (result.bundle_dir / f"{v['id']}.onnx").is_file()
    assert (result.bundle_dir / "trtexec.sh").is_file() and (result.bundle_dir / "weights.bin").is_file()
