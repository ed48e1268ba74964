"""A tuning-bound build on a real Ray cluster of 2 nodes x 1 CPU against 1 node x 1 CPU: speed-up and bytes (JSON).

Usage: ``python bench/bench_cluster.py [--epochs 10] [--candidates 4] [--dataset mnist5k] [--rounds 3] [--out
bench/results/cluster.json]`` (as root: the second node runs in its own mount namespace). The results shown come from
``--epochs 40 --candidates 4 --dataset mnist10k``: with an even number of candidates both nodes tune to the end, and
the serial part (start-up, CKA, features, export, parity) is a small share of the build.

Both clusters are started on this machine as an operator starts them (:mod:`tests.ray_cluster`): a head of 1 CPU on
loopback, and for the second a further node of 1 CPU in its own mount namespace, with empty tmpfs mounts over
``/tmp`` and the benchmark's folder, so it shares no file with the driver. The same build (the demo pair for the
phone profile, ``threads: 1``, ``--no-cache``, at least 4 candidates) runs on each through the command line with
``RAY_ADDRESS``; every published file of both is compared by sha256. Tuning tasks declare 1 CPU, so the 1-node
cluster tunes one candidate at a time and the 2-node cluster two. The two builds run ``--rounds`` times, alternated;
the speed-up is the median of the rounds' wall-time ratios. The machine's load average is recorded before and after
each build, since other processes on a shared machine stretch wall time, and the candidates' summed tuning times
on 2 nodes against 1 say how much two tasks side by side slow each other on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib.files import write_json

from tests.cluster_builds import SMALL, different, run_build, write_config
from tests.ray_cluster import can_isolate, ray_cluster

GOAL = 1.7


def timed_build(nodes: int, config: Path, work: Path) -> dict:
    """The build on a cluster of ``nodes`` nodes of 1 CPU; its wall time, load and output folder."""
    out = work / f"out-{nodes}"
    with ray_cluster(cpus=1) as cluster:
        for _ in range(nodes - 1):
            cluster.add_node(cpus=1, hide=(work,))
        load_before = os.getloadavg()[0]
        built = run_build(config, out, cluster.address, None)
        load_after = os.getloadavg()[0]
    if built.code:
        raise SystemExit(f"the build on {nodes} node(s) failed:\n{built.stderr[-3000:]}")
    tuned = [float(m) for m in re.findall(r'"message": "  L\d+-S\d+: .* in ([0-9.]+)s"', built.stderr)]
    return {
        "nodes": nodes,
        "cpus_per_node": 1,
        "seconds": round(built.seconds, 2),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "tuned_lines": len(tuned),
        "tuning_seconds": round(sum(tuned), 2),
        "out": str(out),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10, help="tuning epochs")
    ap.add_argument("--candidates", type=int, default=4, help="most stitch candidates (at least 4)")
    ap.add_argument(
        "--dataset", default=SMALL["dataset"], help="mnist10k: 8,000 training digits, more tuning per epoch"
    )
    ap.add_argument("--rounds", type=int, default=3, help="1-node and 2-node builds, alternated, this many times")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cluster.json")
    args = ap.parse_args()
    if not can_isolate():
        raise SystemExit("bench_cluster needs root and unshare (the second node runs in its own mount namespace)")
    settings = {
        **SMALL,
        "dataset": args.dataset,
        "threads": 1,
        "plan": {"max_candidates": args.candidates},
        "tune": {"epochs": args.epochs, "patience": args.epochs},
    }
    runs, ratios, diff = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        config = write_config(work / "build.yaml", settings)
        for k in range(args.rounds):  # alternated, so that a slow spell of the machine weighs on both
            one = timed_build(1, config, work)
            two = timed_build(2, config, work)
            diff += different(Path(one.pop("out")), Path(two.pop("out")))
            runs += [{**one, "round": k + 1}, {**two, "round": k + 1}]
            ratios.append(round(one["seconds"] / two["seconds"], 3))
            print(f"round {k + 1}: {one['seconds']:.1f} s on 1 node, {two['seconds']:.1f} s on 2: {ratios[-1]}x")
    speedup = round(statistics.median(ratios), 3)
    alone = statistics.median(r["tuning_seconds"] for r in runs if r["nodes"] == 1)
    beside = statistics.median(r["tuning_seconds"] for r in runs if r["nodes"] == 2)
    result = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pair": "demo-large-cnn -> demo-small-cnn",
        "profile": "phone",
        "settings": settings,
        "runs": runs,
        "ratios": ratios,
        "speedup": speedup,
        # how much longer the same candidates take to tune two at a time on this machine's shared cores and memory
        "tuning_slowdown_side_by_side": round(beside / alone, 3),
        "goal": GOAL,
        "meets_goal": speedup >= GOAL,
        "bytes_identical": diff == [],
        "different_files": sorted(set(diff)),
    }
    write_json(args.out, result)
    print(
        f"2 nodes x 1 CPU vs 1 node x 1 CPU: speed-up {speedup} (median of {ratios}; goal >= {GOAL}); "
        f"bytes identical: {diff == []}; tuning two at a time took {result['tuning_slowdown_side_by_side']}x"
    )


if __name__ == "__main__":
    main()
