"""One build for a fleet, and the Ray executor: the same bundle bytes as separate, local builds.

* A fleet of phone, jetson and a profile nothing fits: one CKA and one tuning, the phone and jetson bundles published
  byte for byte as their own builds publish them, the impossible profile reported (exit code 3) without stopping
  the others.
* The same phone build on a local 2-CPU Ray instance (tuning and export + parity as Ray tasks) gives the bytes of
  the local build (fixture ``phone_bundle``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from restnet_compile import api
from restnet_compile.bundle.result import BuildResult
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import builtin_text
from restnet_compile.pipeline.executor import open_executor
from restnet_compile.pipeline.jobs import Job
from tests.integration.conftest import FAST


def _files(result: BuildResult) -> dict[str, bytes]:
    """Every file of the bundle, and the archive, by name."""
    root = result.bundle_dir
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return {**files, "archive": result.archive.read_bytes()}


def _same_bytes(a: BuildResult, b: BuildResult) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert [k for k in fa if fa[k] != fb[k]] == []


def _impossible(tmp_path: Path) -> Path:
    data = yaml.safe_load(builtin_text("profiles", "phone"))
    data["name"], data["latency"]["budget"] = "watch", "0.01ms"
    path = tmp_path / "watch.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_fleet_publishes_each_bundle_as_its_own_build_does(
    tmp_path: Path,
    phone_bundle: BuildResult,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from restnet_compile.pipeline import tune

    tuned: list[str] = []
    real = tune.tune_job
    monkeypatch.setattr(tune, "tune_job", lambda *a, **k: tuned.append(a[2].point.variant_id) or real(*a, **k))
    config = BuildConfig.model_validate({"profiles": ["phone", str(_impossible(tmp_path)), "jetson"], **FAST})
    fleet = api.build_fleet(config, tmp_path / "dist", cache=tmp_path / "cache")
    assert [r.bundle_dir.name for r in fleet.bundles] == ["phone-tflite-int8", "jetson-onnx-fp16"]
    assert [(f.profile, f.exit_code) for f in fleet.failures] == [("watch", 3)]
    assert fleet.failures[0].message.startswith("no variant fits profile watch; closest is small")
    assert fleet.exit_code == 3
    assert not list((tmp_path / "dist").glob("watch*"))
    assert sorted(tuned) == sorted(set(tuned)) == ["L0-S0", "L1-S1"]  # each candidate tuned once for both
    _same_bytes(fleet.bundles[0], phone_bundle)  # the phone build alone computed every stage
    alone = api.build(config.for_profile("jetson"), tmp_path / "alone", cache=tmp_path / "cache")
    assert alone.cache.stages and all(e.reused for e in alone.cache.stages)  # the fleet's cache is shared
    assert tuned == ["L0-S0", "L1-S1"]
    _same_bytes(fleet.bundles[1], alone)


@pytest.fixture()
def ray_two_cpus() -> Iterator[object]:
    """A local Ray instance of 2 CPUs for one test, shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_tasks_give_the_local_builds_bytes(tmp_path: Path, phone_bundle: BuildResult, ray_two_cpus: object) -> None:
    config = BuildConfig.model_validate({"profile": "phone", "executor": "ray", **FAST})
    result = api.build(config, tmp_path / "dist", cache=False)
    _same_bytes(result, phone_bundle)
    assert ray_two_cpus.is_initialized()  # type: ignore[attr-defined]  # the caller's instance is left to the caller


def _square(x: int, *, progress: object) -> int:
    progress(f"squared {x}")  # type: ignore[operator]
    return x * x


def test_a_ray_instance_started_for_the_build_is_gone_after_it() -> None:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    env = dict(os.environ)
    lines: list[str] = []
    with open_executor("ray", seed=0, threads=1) as executor:
        done = executor.run([Job(_square, (k,), f"square {k}") for k in range(3)], lines.append)  # type: ignore[arg-type]
    assert [d.get() for d in done] == [0, 1, 4]
    assert sorted(lines) == ["squared 0", "squared 1", "squared 2"]
    assert not ray.is_initialized()
    assert dict(os.environ) == env
