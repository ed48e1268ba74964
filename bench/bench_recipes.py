"""Adapters x tuning recipes on every CKA candidate, against end-to-end tuning and the anchors' line.

``python bench/bench_recipes.py [--pairs L:S ...] [--order O] [--adapters ...] [--recipes ...] [--seeds N] [--out F]``

For each pair, the front model's prefix features at every candidate's cut and the large model's logits (the teacher)
are cached in ONE pass per split, and timed; a variant's adapter-only time is its share of that caching time (total /
candidates) plus its own build (LS init, the recipe's passes, early stopping on validation).
End-to-end tuning (the SN-Net recipe: every weight trains, donors' BatchNorm in train mode) starts from the same
1x1 LS init, with ``--epochs`` passes (see ``bench_stitch_tuning.end_to_end``). Both donors stay frozen in every
adapter-only recipe. Test accuracy is on the 1,000-image test split: binomial SE about +-0.5 points at 97 %.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from bench_stitch_tuning import end_to_end
from benchlib import research_adapters  # noqa: F401  (registers the adapters that lost, compared here)
from benchlib.pareto import anchor_line, pareto_reasons

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.cost.flops import count_flops
from restnet_compile.data import Splits
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import ADAPTERS, build_stitched
from restnet_compile.stitching.build import prefix_cache


def run_pair(large_name: str, small_name: str, args: argparse.Namespace) -> dict:
    """Every (adapter, recipe, seed, candidate) of one pair, end to end per candidate, and the summaries."""
    config = BuildConfig(large=large_name, small=small_name, plan={"order": args.order})
    large, small = load_models(config)
    full = load_splits(config, large)
    splits = Splits(
        full.train.subset(np.arange(min(args.train, len(full.train))), "train"), full.calib, full.val, full.test
    )
    cka = compute_cka(large, small, splits.calib.images, 100)
    p = plan(config, cka, large, small)
    _, candidates, front, back = p.rule, p.candidates, p.front, p.back
    test = splits.test
    anchors = {
        role: {
            "flops": count_flops(m, m.input_shape).total,
            "val_accuracy": accuracy(m, splits.val.images, splits.val.labels),
            "test_accuracy": accuracy(m, test.images, test.labels),
        }
        for role, m in (("large", large), ("small", small))
    }
    t = time.perf_counter()
    cache = prefix_cache(front, large, candidates, splits)  # every cut and the teacher's logits, one pass per split
    cache_seconds = time.perf_counter() - t
    rows = []
    fs, bs = front.feature_specs(), back.feature_specs()
    joins = [(fs[c.point.front_block], bs[c.point.back_block]) for c in candidates]
    usable = [a for a in args.adapters if any(ADAPTERS.get(a).incompatibility(*j) is None for j in joins)]
    for adapter in usable or ["auto"]:  # adapters that join none of this pair's candidates are skipped
        for recipe in args.recipes:
            multi = f"{adapter}/{recipe}" in args.multi_seed
            for seed in range(args.seeds if multi and recipe != "ls-only" else 1):
                cfg = TuneSettings(epochs=args.epochs, adapter=adapter, recipe=recipe, match_epochs=args.match_epochs)
                tune = {k: v for k, v in cfg.model_dump().items() if k not in ("adapter", "recipe")}
                for c in candidates:
                    sv = build_stitched(front, back, c, splits, cfg, seed=seed, cache=cache, teacher=large)
                    flops = count_flops(sv.net, large.input_shape).total
                    rows.append(
                        {
                            "id": c.point.variant_id,
                            "adapter": adapter,
                            "adapter_used": sv.candidate.adapter,
                            "recipe": recipe,
                            "seed": seed,
                            "flops": flops,
                            "ls_r2": sv.ls_r2,
                            "val_accuracy_init": sv.tune.val_accuracy_init,
                            "val_accuracy": sv.tune.val_accuracy,
                            "test_accuracy": accuracy(sv.net, test.images, test.labels),
                            "passes": sv.tune.epochs_run,
                            "seconds": round(sv.tune_seconds + cache_seconds / len(candidates), 2),
                            "line": round(anchor_line(anchors, flops), 4),
                            "tune": tune,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    e2e = []
    if args.e2e_seeds:
        for c in candidates:
            for seed in range(args.e2e_seeds):
                t = time.perf_counter()
                net = end_to_end(front, back, large, c, splits, TuneSettings(epochs=args.epochs), seed=seed)
                e2e.append(
                    {
                        "id": c.point.variant_id,
                        "seed": seed,
                        "test_accuracy": accuracy(net, test.images, test.labels),
                        "seconds": round(time.perf_counter() - t, 2),
                    }
                )
                print(json.dumps(e2e[-1]), flush=True)
    return {
        "pair": f"{large_name} -> {small_name}" + ("" if args.order == "large-small" else f" ({args.order})"),
        "anchors": anchors,
        "candidates": [c.point.variant_id for c in candidates],
        "cache_seconds": round(cache_seconds, 2),
        "rows": rows,
        "end_to_end": e2e,
        "summary": summarise(rows, e2e, anchors),
    }


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation of the proxy (val accuracy after LS init) with tuned test accuracy, over candidates."""
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return round(float(np.corrcoef(ra, rb)[0, 1]), 3)


def summarise(rows: list[dict], e2e: list[dict], anchors: dict) -> list[dict]:
    """Per (adapter, recipe): mean test accuracy per candidate over seeds, variants above the line, ratios."""
    out = []
    e2e_acc = {i: float(np.mean([r["test_accuracy"] for r in e2e if r["id"] == i])) for i in {r["id"] for r in e2e}}
    e2e_sec = {i: float(np.mean([r["seconds"] for r in e2e if r["id"] == i])) for i in e2e_acc}
    for key in dict.fromkeys((r["adapter"].split("|")[0], r["recipe"]) for r in rows):
        sel = [r for r in rows if (r["recipe"]) == key[1] and r["adapter"] == key[0]]
        ids = list(dict.fromkeys(r["id"] for r in sel))
        per = {}
        for i in ids:
            rs = [r for r in sel if r["id"] == i]
            acc = [r["test_accuracy"] for r in rs]
            per[i] = {
                "flops": rs[0]["flops"],
                "test_mean": round(float(np.mean(acc)), 4),
                "test_seed_sd": round(float(np.std(acc)), 4),
                "val_mean": round(float(np.mean([r["val_accuracy"] for r in rs])), 4),
                "above_line": round(float(np.mean(acc)) - rs[0]["line"], 4),
                "seconds_mean": round(float(np.mean([r["seconds"] for r in rs])), 2),
            }
        proxy = [float(np.mean([r["val_accuracy_init"] for r in sel if r["id"] == i])) for i in ids]
        shipped = pareto_reasons(anchors, {i: (p["flops"], p["val_mean"]) for i, p in per.items()})
        item = {
            "adapter": key[0],
            "recipe": key[1],
            "seeds": len({r["seed"] for r in sel}),
            "candidates": per,
            "above_line": sum(1 for p in per.values() if p["above_line"] > 0),
            "proxy_rank_corr": _spearman(proxy, [p["test_mean"] for p in per.values()]),
            "shipped": [i for i, why in shipped.items() if why is None],
            "dropped": {i: why for i, why in shipped.items() if why is not None},
        }
        if e2e_acc and set(per) <= set(e2e_acc):
            item["time_ratio"] = round(sum(p["seconds_mean"] for p in per.values()) / sum(e2e_sec[i] for i in per), 3)
            item["accuracy_ratio"] = {i: round(p["test_mean"] / e2e_acc[i], 4) for i, p in per.items()}
        out.append(item)
    return out


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", nargs="+", default=["demo-large-cnn:demo-small-cnn"])
    parser.add_argument("--adapters", nargs="+", default=["conv1x1", "conv-bn-relu", "lowrank-dw", "residual"])
    parser.add_argument("--recipes", nargs="+", default=["ls-only", "distill", "ls+feature-match+distill"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--multi-seed",
        nargs="+",
        default=["conv-bn-relu/ls+feature-match+distill", "conv1x1/distill", "residual/ls+feature-match+distill"],
        help="adapter/recipe pairs run with --seeds seeds (the others with one)",
    )
    parser.add_argument(
        "--order",
        choices=["large-small", "small-large"],
        default="large-small",
        help="stitch order of every pair (small-large: the small model's prefix, the large model's suffix; SN-Net)",
    )
    parser.add_argument("--e2e-seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=TuneSettings().epochs)
    parser.add_argument("--match-epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=3000, help="training images (of the 3,000 in the split)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/recipes.json"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of --out's other (adapter, recipe) pairs (and its end-to-end rows unless --e2e-seeds > 0); "
        "rows without a 'tune' field were measured with an older tune config",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    t = time.perf_counter()
    result = {
        "benchmark": "adapters x recipes on the CKA candidates; adapter-only vs end-to-end; anchors' line",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "test_noise_points": round(100 * math.sqrt(0.97 * 0.03 / 1000), 2),
        "threads": 1,
        "pairs": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.merge and args.out.exists() else {"pairs": []}
    for p in args.pairs:
        pair = run_pair(*p.split(":"), args)
        prev = next((q for q in old["pairs"] if q["pair"] == pair["pair"]), None)
        if prev is not None:
            fresh = {(r["adapter"], r["recipe"]) for r in pair["rows"]}
            pair["rows"] = [r for r in prev["rows"] if (r["adapter"], r["recipe"]) not in fresh] + pair["rows"]
            pair["end_to_end"] = pair["end_to_end"] or prev["end_to_end"]
            pair["summary"] = summarise(pair["rows"], pair["end_to_end"], pair["anchors"])
            for item in pair["summary"]:  # ratios only between rows and end-to-end runs of the same run and settings
                if ((item["adapter"], item["recipe"]) in fresh) != bool(args.e2e_seeds):
                    item.pop("time_ratio", None)
                    item.pop("accuracy_ratio", None)
            pair["merged_from_earlier_run"] = sorted(
                {f"{r['adapter']}/{r['recipe']}" for r in prev["rows"]} - {f"{a}/{b}" for a, b in fresh}
            )
        result["pairs"].append(pair)
        result["wall_seconds"] = round(time.perf_counter() - t, 1)
        done = {q["pair"] for q in result["pairs"]}
        kept = [q for q in old["pairs"] if q["pair"] not in done]  # --merge: pairs not re-run stay as they were
        extra = {"note": old["note"]} if "note" in old else {}
        written = {**result, "pairs": result["pairs"] + kept, **extra}
        args.out.write_text(json.dumps(written, indent=1) + "\n")  # after each pair: a partial run still reports
    pairs = result["pairs"]
    for p in pairs:
        print(p["pair"], json.dumps(p["summary"], indent=1))


if __name__ == "__main__":
    main()
