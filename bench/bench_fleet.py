"""One build for a fleet: mcu + phone + jetson in one build against three separate builds, time and bytes (JSON).

Usage: ``python bench/bench_fleet.py [--epochs 20] [--candidates 8] [--out bench/results/fleet.json]``.
The demo pair with the default tuning (what ``make demo`` builds, on one torch thread); the fewer epochs, the larger
the share of the per-profile export and parity, and the closer the ratio to 1.
``restnet-compile build --profile mcu --profile phone --profile jetson`` loads, screens, computes CKA and tunes once,
then exports, checks and publishes three bundles; the separate builds do all of it three times. Every build is its
own process with ``--no-cache``, run side by side; every file of every bundle, and each archive, is compared by
sha256. The ratio is of CPU time (``lib/cli_builds.py`` says why); the wall-time ratio is reported beside it.
Goal: fleet time / separate builds' time <= 0.5, with identical bytes.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from benchlib.cli_builds import build, bundle_digests, write_config
from benchlib.files import write_json

PROFILES = ("mcu", "phone", "jetson")
GOAL = 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="tuning epochs")
    ap.add_argument("--candidates", type=int, default=8, help="most stitch candidates")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fleet.json")
    args = ap.parse_args()
    settings = {"tune": {"epochs": args.epochs}, "plan": {"max_candidates": args.candidates}, "threads": 1}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        config = str(write_config(work / "build.yaml", settings))
        flags = [a for p in PROFILES for a in ("--profile", p)]
        fleet = build(["--config", config, *flags, "--out", "fleet"], work)
        alone = {p: build(["--config", config, "--profile", p, "--out", f"alone-{p}"], work) for p in PROFILES}
        if fleet.code or any(r.code for r in alone.values()):
            raise SystemExit(f"a build failed:\n{fleet.stderr[-2000:]}")
        assert isinstance(fleet.summary, list)
        fleet_bytes = {s["profile"]: bundle_digests(s, work) for s in fleet.summary}
        alone_bytes = {p: bundle_digests(r.summary, work) for p, r in alone.items()}  # type: ignore[arg-type]
    separate_s = round(sum(r.seconds for r in alone.values()), 2)
    separate_cpu = round(sum(r.cpu_seconds for r in alone.values()), 2)
    ratio = round(fleet.cpu_seconds / separate_cpu, 4)
    identical = {p: fleet_bytes[p] == alone_bytes[p] for p in PROFILES}
    result = {
        "machine": platform.machine(),
        "pair": "demo-large-cnn -> demo-small-cnn",
        "settings": settings,
        "profiles": list(PROFILES),
        "fleet_s": fleet.seconds,
        "separate_s": {p: r.seconds for p, r in alone.items()},
        "separate_total_s": separate_s,
        "fleet_cpu_s": fleet.cpu_seconds,
        "separate_cpu_s": {p: r.cpu_seconds for p, r in alone.items()},
        "separate_total_cpu_s": separate_cpu,
        "fleet_over_separate": ratio,
        "fleet_over_separate_wall": round(fleet.seconds / separate_s, 4),
        "files_per_bundle": {p: len(fleet_bytes[p]) for p in PROFILES},
        "bytes_identical": identical,
        "shipped": {s["profile"]: [v["id"] for v in s["shipped"]] for s in fleet.summary},
        "goal": GOAL,
        "meets_goal": ratio <= GOAL and all(identical.values()),
    }
    write_json(args.out, result)
    print(f"fleet / separate (CPU time) = {ratio} (goal <= {GOAL}); bytes identical: {identical}")


if __name__ == "__main__":
    main()
