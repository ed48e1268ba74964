"""Fail fast: how long a build for a profile nothing fits takes to exit 3, against the same build that fits (JSON).

Usage: ``python bench/bench_fail_fast.py [--epochs 20] [--candidates 8] [--out bench/results/fail_fast.json]``.
The demo pair with the default tuning (what ``make demo`` builds, on one torch thread), once for the built-in
``phone`` profile (a whole build: CKA, tuning, export, parity, publish) and once for ``watch``, the same profile with
a 0.01 ms latency budget that nothing meets. Both are ``restnet-compile build`` processes with ``--no-cache``, run
side by side; each time includes starting Python and importing the toolchain. The ratio is of CPU time
(``lib/cli_builds.py`` says why); the wall-time ratio is reported beside it.
Goal: time to exit 3 / time of the feasible build <= 0.05.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from benchlib.cli_builds import build, impossible_profile, write_config
from benchlib.files import write_json

GOAL = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="tuning epochs of both builds")
    ap.add_argument("--candidates", type=int, default=8, help="most stitch candidates of both builds")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fail_fast.json")
    args = ap.parse_args()
    settings = {"tune": {"epochs": args.epochs}, "plan": {"max_candidates": args.candidates}, "threads": 1}
    with tempfile.TemporaryDirectory(prefix="bench-fail-fast-") as tmp:
        work = Path(tmp)
        config = str(write_config(work / "build.yaml", settings))
        watch = str(impossible_profile(work / "watch.yaml"))
        infeasible = build(["--config", config, "--profile", watch, "--out", "dist"], work)
        feasible = build(["--config", config, "--profile", "phone", "--out", "dist"], work)
    if infeasible.code != 3 or feasible.code != 0:
        raise SystemExit(f"unexpected exit codes {infeasible.code} / {feasible.code}:\n{infeasible.stderr[-2000:]}")
    ratio = round(infeasible.cpu_seconds / feasible.cpu_seconds, 4)
    result = {
        "machine": platform.machine(),
        "pair": "demo-large-cnn -> demo-small-cnn",
        "settings": settings,
        "infeasible": {"profile": "watch (phone, 0.01 ms budget)", "exit_code": infeasible.code},
        "error": infeasible.stderr.strip().splitlines()[-1],
        "feasible": {"profile": "phone", "exit_code": feasible.code},
        "infeasible_s": infeasible.seconds,
        "feasible_s": feasible.seconds,
        "infeasible_cpu_s": infeasible.cpu_seconds,
        "feasible_cpu_s": feasible.cpu_seconds,
        "exit3_over_build": ratio,
        "exit3_over_build_wall": round(infeasible.seconds / feasible.seconds, 4),
        "goal": GOAL,
        "meets_goal": ratio <= GOAL,
    }
    write_json(args.out, result)
    print(f"CPU time to exit 3 / feasible build = {ratio} (goal <= {GOAL}); {result['error']}")


if __name__ == "__main__":
    main()
