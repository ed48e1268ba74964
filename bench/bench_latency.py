"""Predicted vs measured latency of every demo variant on this machine (host profile, LiteRT), as JSON.

Builds the demo pair for the ``host`` profile with ``selection: feasible`` (every variant that fits is exported, so
all of them can be timed), times every signature with LiteRT in interleaved rounds (``runtime.timing``), and compares
the measured medians with the latency model's predictions:

* ``before``: the profile's data-sheet roofline;
* ``after``: calibrated on all measured variants (in-sample, what ``restnet-compile calibrate`` writes);
* ``loo``: leave-one-out: each variant predicted by a model calibrated on the others (the honest figure).

Goals: median absolute error <= 15 % and Spearman rank correlation >= 0.9.

    .venv/bin/python bench/bench_latency.py [--bundle DIR] [--runs 200] [--out bench/results/latency.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

from benchlib.stats import spearman

from restnet_compile.bundle.manifest import load_manifest
from restnet_compile.config.device import load_profile
from restnet_compile.cost.calibrate import Measurement, calibrate_profile
from restnet_compile.cost.latency import mdape, roofline_ms
from restnet_compile.runtime.timing import time_signatures


def _build(out: Path) -> Path:
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig

    config = BuildConfig.model_validate({"profile": "host", "selection": "feasible"})
    return api.build(config, out, progress=lambda m: print(m, file=sys.stderr)).bundle_dir


def _stats(pred: dict[str, float], meas: dict[str, float]) -> dict[str, float]:
    ids = sorted(meas)
    p, m = [pred[i] for i in ids], [meas[i] for i in ids]
    return {"mdape": round(mdape(p, m), 4), "spearman": round(spearman(p, m), 4)}


def run(bundle: Path, warmup: int, runs: int) -> dict:
    """Measure, predict and compare; returns the JSON report."""
    profile = load_profile("host")
    manifest = load_manifest(bundle)
    terms = manifest.latency_terms()
    shipped = [v for v in manifest.variants if v.file and v.signature]
    timings = time_signatures(bundle / str(shipped[0].file), [str(v.signature) for v in shipped], warmup, runs)
    meas = {k: t.p50 / 1e3 for k, t in timings.items()}
    measurements = {k: Measurement(k, meas[k], {90: t.p90 / 1e3}) for k, t in timings.items()}
    before = {k: roofline_ms(terms[k], profile.latency_model) for k in meas}
    calibrated, _ = calibrate_profile(profile, measurements, terms, "bench")
    after = {k: roofline_ms(terms[k], calibrated.latency_model) for k in meas}
    loo = {}
    for k in meas:
        rest = {j: m for j, m in measurements.items() if j != k}
        held_out, _ = calibrate_profile(profile, rest, terms, "bench-loo")
        loo[k] = roofline_ms(terms[k], held_out.latency_model)
    lm = calibrated.latency_model
    return {
        "machine": platform.processor() or platform.machine(),
        "bundle": str(bundle),
        "warmup": warmup,
        "runs": runs,
        "variants": {
            k: {
                "flops": next(v.flops for v in shipped if v.id == k),
                "measured_p50_ms": round(meas[k], 4),
                "measured_p90_ms": round(timings[k].p90 / 1e3, 4),
                "predicted_before_ms": round(before[k], 4),
                "predicted_after_ms": round(after[k], 4),
                "predicted_loo_ms": round(loo[k], 4),
            }
            for k in sorted(meas)
        },
        "before": _stats(before, meas),
        "after_in_sample": _stats(after, meas),
        "after_leave_one_out": _stats(loo, meas),
        "calibrated": {
            "peak_macs_gops": round(lm.peak_macs / 1e9, 2),
            "efficiency": lm.efficiency,
            "op_overhead_us": round(lm.op_overhead * 1e3, 3),
            "invoke_overhead_us": round(lm.invoke_overhead * 1e3, 3),
            "percentile_factor": lm.percentile_factor,
        },
        "goals": {"mdape_max": 0.15, "spearman_min": 0.9},
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="existing host bundle with every variant exported")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        bundle = args.bundle or _build(Path(tmp))
        report = run(bundle, args.warmup, args.runs)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
