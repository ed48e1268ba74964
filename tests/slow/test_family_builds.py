"""Families in the slow tier: the demo family of three CNNs as one fleet build for every profile, a heterogeneous
family (a CNN, a hybrid and a ViT), and a patch that adds a stitch to a family bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig

pytestmark = pytest.mark.slow

QUICK = {
    "dataset": "mnist5k",
    "splits": {"calib": 200, "val": 300, "test": 500, "train": 2000},
    "plan": {"max_candidates": 2},
    "tune": {"epochs": 2},
}
PROFILES = ["mcu", "phone", "jetson", "host"]


def test_the_demo_family_as_one_fleet_gives_each_device_its_span(tmp_path: Path) -> None:
    config = BuildConfig.model_validate(
        {**QUICK, "models": ["demo-large-cnn", "demo-mid-cnn", "demo-small-cnn"], "profiles": PROFILES}
    )
    fleet = api.build_fleet(config, tmp_path / "dist", cache=tmp_path / "cache")
    assert not fleet.failures, fleet.failures
    assert [b.manifest.profile.name for b in fleet.bundles] == PROFILES
    best = {}
    for b in fleet.bundles:
        m = b.manifest
        assert [a.id for a in m.models.anchors or ()] == ["large", "middle", "small"]
        shipped = m.shipped()
        assert shipped and all(v.feasible for v in shipped)
        for v in shipped:
            assert v.latency_ms <= m.profile.latency_budget_ms and v.ram_bytes <= m.profile.ram_bytes
            assert v.parity is not None
        assert all(c.ok for c in api.verify(b.bundle_dir))
        best[m.profile.name] = max(v.val_accuracy_fp32 for v in shipped)
        tags = {v.id[0] for v in m.variants if v.kind == "stitched"} | {
            v.id.split("-")[1][0] for v in m.variants if v.kind == "stitched"
        }
        assert tags <= {"L", "M", "S"}
    mcu = {v.id for v in fleet.bundles[0].manifest.shipped()}
    assert "large" not in mcu  # the MCU cannot run the large model: its span ends lower
    assert best["jetson"] >= best["mcu"]  # a bigger device's span reaches at least as high


def test_a_heterogeneous_family_of_a_cnn_a_hybrid_and_a_vit(tmp_path: Path) -> None:
    config = BuildConfig.model_validate(
        {
            **QUICK,
            "plan": {"max_candidates": 1},  # one stitch per pair: a CNN -> hybrid and a hybrid -> ViT join
            "tune": {"epochs": 1},
            "models": ["demo-vit", "demo-large-cnn", "demo-hybrid-vit"],
            "profile": "phone",
            "target": "tflite-fp16",  # int8 parity of the two transformers depends on the calibration images
            "selection": "feasible",
        }
    )
    result = api.build(config, tmp_path / "dist", cache=False)
    m = result.manifest
    assert [(a.id, a.model.name) for a in m.models.anchors or ()] == [
        ("large", "demo-large-cnn"),
        ("middle", "demo-hybrid-vit"),
        ("small", "demo-vit"),
    ]
    adapters = {v.id: v.stitch.adapter for v in m.variants if v.kind == "stitched"}
    assert any(vid.startswith("L") and a == "map-to-tokens" for vid, a in adapters.items()), adapters
    assert any(vid.startswith("M") for vid in adapters), adapters  # hybrid tokens -> ViT tokens
    assert {v.id for v in m.shipped()} >= {"large", "middle", "small"}
    assert all(c.ok for c in api.verify(result.bundle_dir))


def test_a_patch_adds_a_stitch_to_a_family_bundle(tmp_path: Path) -> None:
    from tests.integration.test_family_build import TINY

    cache = tmp_path / "cache"
    first = api.build(BuildConfig.model_validate(TINY), tmp_path / "dist", cache=cache)
    old = tmp_path / "old"
    shutil.copytree(first.bundle_dir, old)
    wider = BuildConfig.model_validate({**TINY, "plan": {"max_candidates": 2}})
    patch = api.make_patch(old, wider, tmp_path / "family.patch", cache=cache)
    assert patch.variants_added, "the wider plan adds no stitch"
    assert patch.patch_bytes < patch.bundle_bytes
    manifest = api.apply_patch(old, patch.path)
    assert {v.id for v in manifest.shipped()} >= set(patch.variants_added)
    assert all(c.ok for c in api.verify(old))
