"""Builds through the command line, on a Ray cluster (``RAY_ADDRESS``) or locally, and their published bytes.

Shared by the cluster tests (integration and slow tiers) and ``bench/bench_cluster.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The smallest build of the demo pair that still tunes and exports stitched variants.
SMALL = {"dataset": "mnist5k", "plan": {"max_candidates": 2}, "tune": {"epochs": 1}, "selection": "feasible"}


@dataclass(frozen=True)
class Built:
    """One build process: exit code, wall seconds, stderr, and its output folder."""

    code: int
    seconds: float
    stderr: str
    out: Path

    def error_lines(self) -> list[str]:
        """The lines of stderr that start with ``error:``."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def env_for(address: str | None) -> dict[str, str]:
    """This process's environment with the repository first on the path and ``RAY_ADDRESS`` set or removed."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if address:
        env["RAY_ADDRESS"] = address
    return env


def write_config(path: Path, settings: dict) -> Path:
    """``settings`` as a build config YAML at ``path``."""
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def start_build(
    config: Path, out: Path, address: str | None, cache: Path | None, *extra: str, executor: str = "ray"
) -> subprocess.Popen:
    """A ``restnet-compile build --events`` process for the phone profile (not waited for), run in ``out``'s parent
    folder: Ray puts the driver's working directory on its workers' path, and a node must import its own install."""
    args = [sys.executable, "-m", "restnet_compile", "build", "--config", str(config), "--profile", "phone"]
    args += ["--executor", executor, "--out", str(out), "--events", *extra]
    args += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return subprocess.Popen(
        args, env=env_for(address), cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_build(
    config: Path,
    out: Path,
    address: str | None,
    cache: Path | None,
    *extra: str,
    executor: str = "ray",
    timeout: float | None = None,
) -> Built:
    """Run a build to its end (see :func:`start_build`); one still running after ``timeout`` seconds is killed and
    raises ``subprocess.TimeoutExpired``."""
    t0 = time.monotonic()
    proc = start_build(config, out, address, cache, *extra, executor=executor)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return Built(proc.returncode, time.monotonic() - t0, err, out)


def wait_for_event(proc: subprocess.Popen, stage: str, timeout: float = 600.0) -> list[str]:
    """Read ``proc``'s stderr until the progress event of ``stage`` starting; the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "stage" and event.get("stage") == stage:
            return lines
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"stage {stage!r} never started:\n{''.join(lines)[-3000:]}")


def digests(out: Path) -> dict[str, str]:
    """sha256 of every published file (bundle folders and archives) under ``out``."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def different(a: Path, b: Path) -> list[str]:
    """Names of files that are not byte-identical in two output folders (or in only one)."""
    da, db = digests(a), digests(b)
    return sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
