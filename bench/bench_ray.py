"""The Ray executor on a local 2-CPU instance against the local executor, same build: time ratio and bytes (JSON).

Usage: ``python bench/bench_ray.py [--epochs 3] [--candidates 4] [--threads 1 2] [--out bench/results/ray.json]``.
The demo pair for the phone profile, built with ``--executor local`` and ``--executor ray`` (``RAY_ADDRESS`` unset:
the build starts a local Ray instance on this machine's CPUs and shuts it down after), each its own process with
``--no-cache``, side by side, once per torch thread count. A tuning task declares ``threads`` CPUs, so with one
thread two candidates tune at once on two CPUs; with two, one at a time. Every file of both bundles is compared by
sha256. The ratio is of wall time (what parallel tasks save; on a shared machine it moves with the other
processes' load). No goal on time; the bytes must be identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from benchlib.cli_builds import build, bundle_digests, write_config
from benchlib.files import write_json


def compare(threads: int, settings: dict, work: Path) -> dict:
    """Local and Ray builds of the same config at ``threads`` torch threads."""
    config = str(write_config(work / f"build-{threads}.yaml", {**settings, "threads": threads}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    runs = {
        ex: build(["--config", config, "--profile", "phone", "--executor", ex, "--out", f"{ex}-{threads}"], work, env)
        for ex in ("local", "ray")
    }
    for ex, r in runs.items():
        if r.code:
            raise SystemExit(f"the {ex} build failed:\n{r.stderr[-2000:]}")
    local, ray = runs["local"], runs["ray"]
    same = bundle_digests(local.summary, work) == bundle_digests(ray.summary, work)  # type: ignore[arg-type]
    return {
        "threads": threads,
        "local_s": local.seconds,
        "ray_s": ray.seconds,
        "ray_over_local": round(ray.seconds / local.seconds, 4),
        "bytes_identical": same,
        "shipped": [v["id"] for v in local.summary["shipped"]],  # type: ignore[index]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="tuning epochs")
    ap.add_argument("--candidates", type=int, default=4, help="most stitch candidates")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads of each pair of builds")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ray.json")
    args = ap.parse_args()
    settings = {"tune": {"epochs": args.epochs}, "plan": {"max_candidates": args.candidates}}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        rows = [compare(t, settings, Path(tmp)) for t in args.threads]
    result = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pair": "demo-large-cnn -> demo-small-cnn",
        "profile": "phone",
        "settings": settings,
        "runs": rows,
        "bytes_identical": all(r["bytes_identical"] for r in rows),
    }
    write_json(args.out, result)
    for r in rows:
        print(f"threads {r['threads']}: ray / local = {r['ray_over_local']}; bytes identical: {r['bytes_identical']}")


if __name__ == "__main__":
    main()
