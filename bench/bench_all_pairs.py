"""Every stitch the adapters can join, not only the CKA plan's: is the plan leaving a better candidate out?

``python bench/bench_all_pairs.py [--seeds N] [--out FILE]``

For the demo pair, every (large cut ``i``, small block ``j``) with at least one small block left after ``j`` and a
registered adapter that can join them is built and tuned with the default ``tune`` settings (both donors frozen), on
``--seeds`` seeds. Per pair: CKA, whether the plan proposes it, the LS fit's R^2, validation accuracy after the LS
init (the proxy) and after tuning, test accuracy (1,000 images, binomial SE about +-0.5 points) and the anchors' line
at its FLOPs. One JSON file with the rows and a per-pair summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from benchlib.pareto import anchor_line

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.cost.flops import count_flops
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import Candidate, StitchPoint, build_stitched
from restnet_compile.stitching.adapters import adapter_for
from restnet_compile.stitching.build import prefix_cache


def main() -> None:
    """Build every joinable pair on every seed; write rows and a summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/all_pairs.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    start = time.perf_counter()
    config = BuildConfig(large="demo-large-cnn", small="demo-small-cnn")
    large, small = load_models(config)
    splits = load_splits(config, large)
    cka = compute_cka(large, small, splits.calib.images, 100)
    p = plan(config, cka, large, small)
    _, planned, front, back = p.rule, p.candidates, p.front, p.back
    planned_ids = {c.point.variant_id for c in planned}
    fs, bs = front.feature_specs(), back.feature_specs()
    pairs = [
        Candidate(StitchPoint(i, j, "L", "S"), name, float(cka[i, j]))
        for i in range(len(fs) - 1)
        for j in range(len(bs) - 1)
        if (name := adapter_for(fs[i], bs[j])) is not None
    ]
    cache = prefix_cache(front, large, pairs, splits)
    test = splits.test
    anchors = {
        r: {"flops": count_flops(m, m.input_shape).total, "test_accuracy": accuracy(m, test.images, test.labels)}
        for r, m in (("large", large), ("small", small))
    }
    rows = []
    for seed in range(args.seeds):
        for c in pairs:
            sv = build_stitched(front, back, c, splits, TuneSettings(), seed=seed, cache=cache, teacher=large)
            flops = count_flops(sv.net, large.input_shape).total
            row = {
                "id": c.point.variant_id,
                "planned": c.point.variant_id in planned_ids,
                "cka": round(c.cka, 4),
                "seed": seed,
                "ls_r2": sv.ls_r2,
                "val_accuracy_init": sv.tune.val_accuracy_init,
                "val_accuracy": sv.tune.val_accuracy,
                "test_accuracy": accuracy(sv.net, test.images, test.labels),
                "line": round(anchor_line(anchors, flops), 4),
                "mflops": round(flops / 1e6, 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = []
    for c in pairs:
        rs = [r for r in rows if r["id"] == c.point.variant_id]
        test_mean = statistics.mean(r["test_accuracy"] for r in rs)
        summary.append(
            {
                "id": c.point.variant_id,
                "planned": rs[0]["planned"],
                "cka": rs[0]["cka"],
                "mflops": rs[0]["mflops"],
                "line": rs[0]["line"],
                "val_accuracy_init": rs[0]["val_accuracy_init"],
                "val_accuracy_mean": round(statistics.mean(r["val_accuracy"] for r in rs), 4),
                "test_accuracy_mean": round(test_mean, 4),
                "above_line": test_mean > rs[0]["line"],
            }
        )
    out = {
        "benchmark": "every joinable (cut, resume) pair of the demo pair, default tuning, donors frozen",
        "seeds": args.seeds,
        "anchors": anchors,
        "tune": TuneSettings().model_dump(),
        "summary": summary,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for s in summary:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
