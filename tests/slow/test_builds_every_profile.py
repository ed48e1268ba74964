"""Slow end-to-end builds (`make test-slow`): every profile, the full demo config, byte-identical rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("profile", ["mcu", "phone", "jetson", "host"])
def test_full_build_fits_profile(profile: str, tmp_path: Path) -> None:
    result = api.build(BuildConfig(profile=profile), tmp_path)
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    shipped = [v for v in manifest["variants"] if v["selected"]]
    assert shipped
    limits = manifest["profile"]
    for v in shipped:
        assert v["latency_ms"] <= limits["latency_budget_ms"]
        assert v["ram_bytes"] <= limits["ram_bytes"]
        assert v["parity"] is not None
    if profile == "mcu":  # the demo pair is sized so the MCU rejects the large model and keeps the small one
        ids = {v["id"] for v in shipped}
        assert "large" not in ids and "small" in ids
        assert any(v["kind"] == "stitched" for v in shipped)


def test_same_config_and_seed_give_byte_identical_bundles(tmp_path: Path) -> None:
    cfg = BuildConfig(profile="mcu")
    # no cache: both builds compute every stage, so the second is not simply served from the first one's cache
    a = api.build(cfg, tmp_path / "a", cache=False)
    b = api.build(cfg, tmp_path / "b", cache=False)
    for name in sorted(p.name for p in a.bundle_dir.iterdir()):
        assert (a.bundle_dir / name).read_bytes() == (b.bundle_dir / name).read_bytes(), name
    assert a.archive.read_bytes() == b.archive.read_bytes()


@pytest.mark.parametrize(
    ("large", "small", "adapter", "target"),
    [
        ("demo-large-cnn", "demo-vit", "map-to-tokens", "tflite-int8"),
        ("demo-vit", "demo-small-cnn", "tokens-to-map-mlp", "tflite-fp16"),
    ],
)
def test_heterogeneous_pair_exports_to_tflite_with_parity(
    large: str, small: str, adapter: str, target: str, tmp_path: Path
) -> None:
    """CNN -> transformer and transformer -> CNN variants go through onnx2tf into one multi-signature .tflite.

    CNN -> ViT in int8: the ViT's attention scores stay float (the target's float_ops); full int8 agrees with
    PyTorch on ~23 % of test images. ViT -> CNN in fp16: in int8 its L0-S1 variant (ViT patch embedding -> CNN)
    agrees on 92.5 % only, and the build refuses it with exit 4 rather than ship it.
    """
    cfg = BuildConfig.model_validate(
        {
            "large": large,
            "small": small,
            "profile": "phone",
            "target": target,
            "selection": "feasible",
            "plan": {"max_candidates": 2},
            "tune": {"epochs": 1},
        }
    )
    result = api.build(cfg, tmp_path)
    stitched = [v for v in result.manifest.shipped() if v.kind == "stitched"]
    assert stitched and all(v.stitch.adapter == adapter for v in stitched)
    for v in result.manifest.shipped():
        assert v.parity is not None and v.parity.top1_agreement >= 0.98 and v.file == "variants.tflite"
    if target == "tflite-int8":
        assert result.manifest.target.float_ops == ("BATCH_MATMUL", "SOFTMAX")


def _line(small: object, large: object, flops: int) -> float:
    """Test accuracy of the straight line between the two anchors at ``flops``."""
    lo, hi = small.flops, large.flops  # type: ignore[attr-defined]
    a, b = small.accuracy_fp32, large.accuracy_fp32  # type: ignore[attr-defined]
    return a + (b - a) * (flops - lo) / (hi - lo)


def test_demo_phone_bundle_ships_three_stitched_variants_above_the_anchors_line(tmp_path: Path) -> None:
    """What `make demo` builds: at least 3 stitched variants strictly above the line, none dominated (FLOPs, test)."""
    m = api.build(BuildConfig(), tmp_path).manifest
    small, large = m.variant("small"), m.variant("large")
    shipped = m.shipped()
    above = [v.id for v in shipped if v.kind == "stitched" and v.accuracy_fp32 > _line(small, large, v.flops)]
    assert len(above) >= 3, above
    for v in shipped:
        for o in [o for o in [*shipped, small, large] if o.id != v.id]:
            no_worse = o.flops <= v.flops and o.accuracy_fp32 >= v.accuracy_fp32
            assert not (no_worse and (o.flops < v.flops or o.accuracy_fp32 > v.accuracy_fp32)), (v.id, o.id)
