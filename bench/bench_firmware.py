"""Firmware: does every MCU variant run in a real TensorFlow Lite Micro firmware, bit-identical, in the flash and arena
the manifest promises, and does a second firmware build reuse the TFLM library? (JSON)

Usage: ``python bench/bench_firmware.py --bundle DIR [--bundle DIR ...] [--tflm DIR] [--cache-dir DIR]
[--runs host/reference,cortex-m4/reference,cortex-m55/cmsis-nn] [--samples N] [--update]
[--out bench/results/firmware.json]``.
For each ``tflm-int8`` bundle and each run: ``firmware --cpu CPU --kernels KERNELS --run`` (Cortex-M4 on QEMU
``mps2-an386``, Cortex-M55 on ``mps3-an547``; QEMU runs take the first ``--samples`` reference inputs). The first
bundle's firmware for the first run's CPU is built twice into two fresh folders, one after the other: the first
build's time includes building the TFLM library unless the cache already held it, in which case the library's own
build time (recorded in its cache entry) is added and the file says so.
The bundles: the demo ``mcu`` bundle (``restnet-compile build --profile mcu``) and one with seven variants (the demo
pair on ``mnist5k``, every feasible variant, two tuning epochs: ``bench/firmware_seven.yaml``, on
``bench/firmware_profile.yaml``, the ``mcu`` profile with room for the large model). The arena estimate is the one
the firmware sizes its arena with: the build's estimate with TFLite Micro's bookkeeping laid out for the CPU's
pointers (``restnet_compile.firmware.arena``); CMSIS-NN's scratch buffers come on top of it (the firmware reserves a
quarter more), so its ratio is stated, not held to the goal.
Goals: every variant bit-identical to the TFLite Micro Python interpreter on host and Cortex-M4 (reference kernels),
CMSIS-NN top-1 agreement 100 %; model data in the ELF <= 1.02 x the bundle's model bytes; measured arena within
[0.9, 1.0] x the estimate on the Cortex-M4; second build time / first <= 0.2. The file records the machine's load
average before and after each bundle, since the builds share the CPU with whatever else runs. ``--update`` keeps the
other bundles already in ``--out`` (each with its own load record).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchlib.files import write_json

from restnet_compile import api
from restnet_compile.firmware import TFLM_ENV
from restnet_compile.firmware.library import default_cache_dir

RUNS = "host/reference,cortex-m4/reference,cortex-m55/cmsis-nn"
GOALS = {"model_over_bundle": 1.02, "arena_low": 0.9, "arena_high": 1.0, "second_over_first": 0.2}


def _variants(r: api.FirmwareResult) -> list[dict]:
    return [
        {
            "id": v.id,
            "bit_exact": v.bit_exact,
            "max_int8_diff": v.max_int8_diff,
            "top1_agreement": v.top1_agreement,
            "max_abs_diff_deployed": round(v.max_abs_diff_deployed, 6),
            "arena_used_bytes": v.arena_used_bytes,
            "arena_bytes_estimate": v.arena_bytes_estimate,
            "arena_ratio": round(v.arena_used_bytes / v.arena_bytes_estimate, 4),
        }
        for v in r.variants or ()
    ]


def bench_bundle(
    bundle: Path, tflm: Path, cache: Path, work: Path, runs_wanted: list[tuple[str, str]], samples: int
) -> dict:
    """Every run of one bundle, with flash and arena against the manifest."""
    manifest = api.inspect(bundle)
    runs = {}
    for cpu, kernels in runs_wanted:
        n = None if cpu == "host" else samples
        r = api.firmware(bundle, tflm, cpu, work / f"{cpu}-{kernels}", kernels, run=True, cache=cache, samples=n)
        ratios = [v.arena_used_bytes / v.arena_bytes_estimate for v in r.variants or ()]
        runs[f"{cpu}/{kernels}"] = {
            "flash": r.flash,
            "ram": r.ram,
            "model_over_bundle": round(r.flash["model"] / r.bundle_model_bytes, 4),
            "build_s": round(r.build_seconds, 1),
            "run_s": round(r.run_seconds or 0.0, 1),
            "arena_ratio_min": round(min(ratios), 4),
            "arena_ratio_max": round(max(ratios), 4),
            "variants": _variants(r),
        }
    return {
        "bundle": bundle.name,
        "profile": manifest.profile.name,
        "variants": [v.id for v in manifest.shipped()],
        "bundle_model_bytes": manifest.bundle_model_bytes,
        "runs": runs,
    }


def bench_rebuild(bundle: Path, tflm: Path, cache: Path, work: Path, cpu: str, kernels: str) -> dict:
    """Two builds of one bundle's firmware, one after the other, into fresh folders."""
    times, first = [], None
    for k in range(2):
        start = time.perf_counter()
        r = api.firmware(bundle, tflm, cpu, work / f"rebuild-{k}", kernels, cache=cache)
        times.append(time.perf_counter() - start)
        first = first or r
    assert first is not None
    library_s = 0.0
    if first.library_reused:  # built before this run: add its recorded build time
        library_s = json.loads((first.library.parent / "build.json").read_text())["seconds"]
    first_s = times[0] + library_s
    return {
        "bundle": bundle.name,
        "cpu": f"{cpu}/{kernels}",
        "library_built_in_this_run": not first.library_reused,
        "library_s_from_cache_entry": library_s,
        "first_s": round(first_s, 1),
        "second_s": round(times[1], 1),
        "second_over_first": round(times[1] / first_s, 4),
    }


def _usage() -> tuple[float, os.times_result, float]:
    return os.getloadavg()[0], os.times(), time.perf_counter()


def _load(before: tuple[float, os.times_result, float]) -> dict:
    """The machine's 1-minute load average before and after, the wall time and this process's own CPU time (its
    children, the compilers and QEMU, included)."""
    load0, cpu0, t0 = before
    cpu1 = os.times()
    own = sum(getattr(cpu1, k) - getattr(cpu0, k) for k in ("user", "system", "children_user", "children_system"))
    return {
        "before": round(load0, 2),
        "after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - t0, 1),
        "own_cpu_s": round(own, 1),
    }


def summary(bundles: list[dict], rebuild: dict, runs: list[str]) -> dict:
    """The goals' figures over every bundle."""
    reference = [v for b in bundles for k, r in b["runs"].items() if k.endswith("reference") for v in r["variants"]]
    cmsis = [v for b in bundles for k, r in b["runs"].items() if k.endswith("cmsis-nn") for v in r["variants"]]
    m4 = [r for b in bundles for k, r in b["runs"].items() if k == "cortex-m4/reference"] or [
        r for b in bundles for r in b["runs"].values()
    ]  # the Cortex-M4 when it ran, else every run (the arena goal is the reference kernels' on a 32-bit core)
    result = {
        "bit_identical": all(v["bit_exact"] for v in reference),
        "cmsis_nn_top1": min((v["top1_agreement"] for v in cmsis), default=None),
        "cmsis_nn_max_int8_diff": max((v["max_int8_diff"] for v in cmsis), default=None),
        "cmsis_nn_arena_ratio_max": max((v["arena_ratio"] for v in cmsis), default=None),
        "model_over_bundle_max": max(r["model_over_bundle"] for r in m4),
        "arena_ratio_min": min(v["arena_ratio"] for r in m4 for v in r["variants"]),
        "arena_ratio_max": max(v["arena_ratio"] for r in m4 for v in r["variants"]),
    }
    result["meets_goal"] = bool(
        set(runs) == set(RUNS.split(","))
        and all(set(b["runs"]) == set(runs) for b in bundles)
        and result["bit_identical"]
        and result["cmsis_nn_top1"] == 1.0
        and result["model_over_bundle_max"] <= GOALS["model_over_bundle"]
        and GOALS["arena_low"] <= result["arena_ratio_min"]
        and result["arena_ratio_max"] <= GOALS["arena_high"]
        and rebuild["second_over_first"] <= GOALS["second_over_first"]
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, action="append", required=True, help="a tflm-int8 bundle (repeatable)")
    ap.add_argument("--tflm", type=Path, default=os.environ.get(TFLM_ENV), help=f"TFLM tree (default ${TFLM_ENV})")
    ap.add_argument("--cache-dir", type=Path, default=None, help="TFLM library cache (default: the usual one)")
    ap.add_argument("--runs", default=RUNS, help="comma-separated CPU/KERNELS pairs")
    ap.add_argument("--samples", type=int, default=8, help="reference inputs per variant on QEMU (host: all)")
    ap.add_argument(
        "--update",
        action="store_true",
        help="keep the other bundles of --out (measured earlier with the same --runs and --samples); the rebuild "
        "is this run's",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "firmware.json")
    args = ap.parse_args()
    cache = args.cache_dir or default_cache_dir()
    wanted = [tuple(r.split("/")) for r in args.runs.split(",")]
    runs = [f"{c}/{k}" for c, k in wanted]
    with tempfile.TemporaryDirectory(prefix="bench-firmware-") as tmp:
        work = Path(tmp)
        rebuild = bench_rebuild(args.bundle[0], args.tflm, cache, work, *wanted[0])
        bundles = []
        for b in args.bundle:
            before = _usage()
            entry = bench_bundle(b, args.tflm, cache, work / b.name, wanted, args.samples)
            bundles.append({**entry, "load": _load(before)})
    if args.update and args.out.is_file():
        old = json.loads(args.out.read_text())
        if old["runs"] != runs or old["samples_on_qemu"] != args.samples:
            raise SystemExit(f"--update: {args.out} was measured with other --runs or --samples")
        names = {b["bundle"] for b in bundles}
        bundles = [b for b in old["bundles"] if b["bundle"] not in names] + bundles
    result = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "runs": runs,
        "samples_on_qemu": args.samples,
        "goals": GOALS,
        "bundles": bundles,
        "rebuild": rebuild,
        **summary(bundles, rebuild, runs),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "bundles"}, indent=2))


if __name__ == "__main__":
    main()
