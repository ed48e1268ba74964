"""Real ``restnet-compile build`` runs for the scale benchmarks: timed subprocesses, and the bytes they published.

Each build runs as its own process with ``--no-cache`` (every stage computed), so a time includes starting Python and
importing the toolchain, as a user's build does. Each run records its wall time and its CPU time (user + sys of the
process and the children it waited for): on a shared machine, other processes stretch wall time by several times
from one minute to the next, while the CPU time a build needs barely moves, so ratios of work are taken from it.
Those builds run one torch thread: with two, a thread waiting at a barrier for one that another process has
descheduled spins, and the CPU time grows with the machine's load too.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from restnet_compile.config.device import builtin_text


@dataclass(frozen=True)
class Run:
    """One build process: wall and CPU seconds, exit code, the ``--json`` it printed (None: none), stderr."""

    seconds: float
    cpu_seconds: float
    code: int
    summary: dict | list | None
    stderr: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """``restnet-compile build ARGS --no-cache --quiet --json`` in ``cwd``, timed."""
    cmd = [sys.executable, "-m", "restnet_compile", "build", *args, "--no-cache", "--quiet", "--json"]
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return Run(round(seconds, 2), round(cpu, 2), proc.returncode, summary, proc.stderr)


def bundle_digests(summary: dict, cwd: Path) -> dict[str, str]:
    """sha256 of every file of a published bundle and of its archive (one ``--json`` summary of a build in ``cwd``)."""
    root = cwd / summary["bundle"]
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    files["<archive>"] = cwd / summary["archive"]
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in files.items()}


def write_config(path: Path, settings: dict) -> Path:
    """A build config YAML of ``settings`` (profiles come from the command line)."""
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def impossible_profile(path: Path, budget: str = "0.01ms") -> Path:
    """The built-in phone profile named ``watch``, with a latency budget no variant of the demo pair meets."""
    data = yaml.safe_load(builtin_text("profiles", "phone"))
    data["name"], data["latency"]["budget"] = "watch", budget
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
