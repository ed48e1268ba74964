"""Slow end-to-end builds (`make test-slow`): every profile, the full demo config, byte-identical rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.buildconfig import BuildConfig

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
    a = api.build(cfg, tmp_path / "a")
    b = api.build(cfg, tmp_path / "b")
    for name in sorted(p.name for p in a.bundle_dir.iterdir()):
        assert (a.bundle_dir / name).read_bytes() == (b.bundle_dir / name).read_bytes(), name
    assert a.archive.read_bytes() == b.archive.read_bytes()
