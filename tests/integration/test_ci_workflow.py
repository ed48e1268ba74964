"""The example CI workflow (.github/workflows/bundles.yml) works as written: its `run:` steps, in order, in a fresh
folder, against a tiny config: one fleet build, every bundle verified, and a patch published beside the bundle whose
previous release is there (the session's phone bundle stands in for the release download)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from restnet_compile import api
from restnet_compile.runtime import Bundle

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "bundles.yml"
TINY = {
    "dataset": "mnist5k",
    "plan": {"max_candidates": 1},
    "tune": {"epochs": 1},
    "selection": "feasible",
    "profiles": ["phone", "host"],
}


def _steps(workflow: dict) -> list[dict]:
    """The job's `run:` steps that run on a branch push (a step with `if:` publishes tags), installation aside."""
    (job,) = workflow["jobs"].values()
    return [s for s in job["steps"] if "run" in s and "if" not in s and s["run"].strip() != "make install"]


def test_the_workflow_builds_the_fleet_once_verifies_and_patches(tmp_path: Path, phone_bundle: api.BuildResult) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = _steps(workflow)
    assert [s["name"] for s in steps] == [
        "Build every profile in one fleet build",
        "Verify every bundle with the device runtime",
        "Fetch the previous release's bundles, if there is one",
        "Patch each bundle against the previous release's",
    ]
    (job,) = workflow["jobs"].values()
    cache_step = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert cache_step["with"]["path"] == workflow["env"]["RESTNET_COMPILE_CACHE"]

    work = tmp_path / "checkout"
    (work / "previous").mkdir(parents=True)
    shutil.copy(phone_bundle.archive, work / "previous")  # the previous release's phone bundle
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    launcher = tmp_path / "restnet-compile"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m restnet_compile "$@"\n')
    launcher.chmod(0o755)
    env = {**os.environ, **workflow["env"], "RC": str(launcher), "CONFIG": str(config), "PATH": os.environ["PATH"]}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for step in steps:
        proc = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step["run"]],
            cwd=work,
            env={**env, **{k: str(v) for k, v in step.get("env", {}).items()}},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"{step['name']}: {proc.stderr[-2000:]}"

    dist = work / "dist"
    summary = json.loads((dist / "summary.json").read_text())
    assert [b["profile"] for b in summary] == ["phone", "host"]
    assert sorted(p.name for p in dist.glob("*.tar.gz")) == ["host-tflite-int8.tar.gz", "phone-tflite-int8.tar.gz"]
    assert sorted(p.name for p in dist.glob("*.patch")) == ["phone-tflite-int8.patch"]  # no previous host bundle
    assert any((work / workflow["env"]["RESTNET_COMPILE_CACHE"]).rglob("*")), "the stage cache the workflow keeps"

    device = tmp_path / "device"
    with tarfile.open(phone_bundle.archive) as tar:
        tar.extractall(device, filter="data")
    old = device / phone_bundle.bundle_dir.name
    api.apply_patch(old, dist / "phone-tflite-int8.patch")
    assert (old / "manifest.json").read_bytes() == (dist / "phone-tflite-int8" / "manifest.json").read_bytes()
    Bundle.open(old)  # every file matches the new manifest
