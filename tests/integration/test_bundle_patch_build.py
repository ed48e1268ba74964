"""A patch from a real build: applied to the older MCU bundle it gives the full build's bytes, and verify passes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.bundle.patch import read_patch
from restnet_compile.config.build import BuildConfig
from tests.integration.conftest import FAST


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_patch_turns_the_old_bundle_into_the_full_build(
    tflm_bundle: api.BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.mktemp("patch-cache")
    fewer = BuildConfig.model_validate({"profile": "mcu", "target": "tflm-int8", **FAST, "plan": {"max_candidates": 1}})
    old = api.build(fewer, tmp_path_factory.mktemp("old"), cache=cache)
    assert {v.id for v in old.manifest.shipped()} < {v.id for v in tflm_bundle.manifest.shipped()}
    full = BuildConfig.model_validate({"profile": "mcu", "target": "tflm-int8", **FAST})
    out = tmp_path_factory.mktemp("patch") / "add.patch"
    result = api.make_patch(old.bundle_dir, full, out, cache=cache)
    assert result.variants_added and result.patch_bytes == out.stat().st_size
    patch = read_patch(out)
    unchanged = [n for n, f in patch.files.items() if f.source == "base"]
    print(f"patch {result.patch_bytes:,} B of {result.bundle_bytes:,} B; from the old bundle: {', '.join(unchanged)}")
    target = Path(shutil.copytree(old.bundle_dir, tmp_path_factory.mktemp("device") / old.bundle_dir.name))
    api.apply_patch(target, out)
    assert _tree(target) == _tree(tflm_bundle.bundle_dir)  # byte-identical to the full build of the same variants
    assert all(c.ok for c in api.verify(target))
