"""``build`` with two profiles (a fleet), as a user runs it: the table of each bundle, and ``--json``'s list.

Two ONNX bundles (jetson and host, fp32) from one CKA and one tuning keep it cheap; the second command reuses the
first's cache, so it costs little more than publishing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from restnet_compile.cli import cli
from tests.integration.conftest import FAST


@pytest.fixture(scope="module")
def fleet_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(yaml.safe_dump({"profiles": ["jetson", "host"], "target": "onnx-fp32", **FAST}), encoding="utf-8")
    return path


def _build(config: Path, out: Path, cache: Path, *extra: str) -> tuple[int, str]:
    args = ["build", "--config", str(config), "--out", str(out), "--cache-dir", str(cache), "--quiet", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_a_fleet_prints_each_bundle_then_its_json(fleet_config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, text = _build(fleet_config, tmp_path / "dist", cache)
    assert code == 0, text
    bundles = [tmp_path / "dist" / name for name in ("jetson-onnx-fp32", "host-onnx-fp32")]
    for bundle in bundles:
        size = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["bundle_model_bytes"]
        assert f"== {bundle.name}\n" in text
        assert f"bundle: {bundle}  ({size:,} bytes of models)" in text
    assert text.rstrip().splitlines()[-1].startswith("cache: ")  # the fleet's cache line, last

    code, listed = _build(fleet_config, tmp_path / "again", cache, "--json")
    assert code == 0, listed
    entries = json.loads(listed)
    assert [(e["profile"], e["target"]) for e in entries] == [("jetson", "onnx-fp32"), ("host", "onnx-fp32")]
    assert all(e["cache"]["stages"] and all(s["reused"] for s in e["cache"]["stages"]) for e in entries)
    for entry, bundle in zip(entries, bundles, strict=True):
        assert entry["bundle_model_bytes"] == json.loads((bundle / "manifest.json").read_text())["bundle_model_bytes"]
