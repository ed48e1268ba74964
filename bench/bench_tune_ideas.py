"""Adapter-only tuning options, each on every CKA candidate and several seeds, against the anchors' line.

``python bench/bench_tune_ideas.py --ideas NAME=JSON ... [--seeds N] [--dataset D] [--out FILE]``

Each idea is a set of ``tune`` settings overrides on top of the default (``default={}``), of the research options
that left the package (``augment``, ``schedule``, ``weight_decay``, ``label_smoothing``, ``ema``; see
``lib/tune_options.py``), plus optionally
``"input_copies": K``: the training split becomes the original images and K copies shifted by up to +-2 px (the donors'
own pre-training augmentation, zero fill), each run through the large model once more (true input augmentation; the
extra caching time is printed), and ``"suffix": NAME`` (see ``lib/suffix_ideas.py``: re-estimated BatchNorm
statistics of the small model's suffix, or its norms or first block trained too; ``unshared_params`` in each row
counts the small-model parameters a bundle could then no longer share). Both donor models stay frozen in every idea
without ``suffix``. The large model's prefix features at
every cut are cached once per training set and shared by all ideas. Per variant it records the accuracy on the
(unaugmented) training split, on validation and on the 1,000-image test split (binomial SE about +-0.5 points), the
passes run and the seconds spent. One JSON line per variant is appended to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import research_adapters  # noqa: F401  (registers the adapters that lost, for ideas that name one)
from benchlib.pareto import anchor_line
from benchlib.suffix_ideas import unshared_params
from benchlib.tune_options import TuneOptions, options_recipe

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.cost.flops import count_flops
from restnet_compile.data import Dataset, Splits
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import build_stitched
from restnet_compile.stitching.build import prefix_cache
from restnet_compile.stitching.tuning.loop import cached_accuracy


def _pretrain_script() -> Any:
    """The demo zoo's training script (scripts/pretrain_demo_zoo.py: its augmentation, outside the package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_demo_zoo.py"
    spec = importlib.util.spec_from_file_location("pretrain_demo_zoo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Run every idea on every candidate and seed; print a per-idea summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ideas", nargs="+", default=["default={}"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist5k", help="build dataset (mnist10k: 5,000 more training digits)")
    parser.add_argument("--only", nargs="*", default=None, help="candidate ids to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/tune_ideas.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    config = BuildConfig(large="demo-large-cnn", small="demo-small-cnn", dataset=args.dataset)
    large, small = load_models(config)
    splits = load_splits(config, large)
    cka = compute_cka(large, small, splits.calib.images, 100)
    p = plan(config, cka, large, small)
    _, candidates, front, back = p.rule, p.candidates, p.front, p.back
    if args.only:
        candidates = [c for c in candidates if c.point.variant_id in args.only]
    test = splits.test
    anchors = {
        r: {"flops": count_flops(m, m.input_shape).total, "test_accuracy": accuracy(m, test.images, test.labels)}
        for r, m in (("large", large), ("small", small))
    }
    t = time.perf_counter()
    caches = {0: (splits, prefix_cache(front, large, candidates, splits))}
    print(f"caching pass {time.perf_counter() - t:.1f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {}
    for idea in args.ideas:
        name, _, overrides = idea.partition("=")
        opts = json.loads(overrides or "{}")
        copies = opts.pop("input_copies", 0)
        suffix = opts.pop("suffix", "frozen")
        research = TuneOptions(**{k: opts.pop(k) for k in list(opts) if k in TuneOptions.__dataclass_fields__})
        base = TuneSettings(**opts)
        cfg = TuneSettings(**{**opts, "recipe": options_recipe(base.recipe, research, suffix)})
        if copies not in caches:
            t = time.perf_counter()
            gen = torch.Generator().manual_seed(1234)
            x = torch.from_numpy(splits.train.images)
            shift = _pretrain_script().random_shift
            images = np.concatenate([splits.train.images] + [shift(x, gen).numpy() for _ in range(copies)])
            labels = np.tile(splits.train.labels, copies + 1)
            train = Dataset(f"{splits.train.name}+{copies}shifted", images, labels, splits.train.num_classes)
            aug = Splits(train, splits.calib, splits.val, splits.test)
            caches[copies] = (aug, prefix_cache(front, large, candidates, aug))
            print(f"caching pass with {copies} shifted copies {time.perf_counter() - t:.1f} s", flush=True)
        split_set, cache = caches[copies]
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for c in candidates:
                own_back = back if suffix == "frozen" else copy.deepcopy(back)  # ideas that change it get a copy
                sv = build_stitched(front, own_back, c, split_set, cfg, seed=seed, cache=cache, teacher=large)
                flops = count_flops(sv.net, large.input_shape).total
                row = {
                    "idea": name,
                    "dataset": args.dataset,
                    "overrides": json.loads(overrides or "{}"),
                    "id": c.point.variant_id,
                    "seed": seed,
                    "train_accuracy": round(cached_accuracy(sv.net, caches[0][1][c.point.front_block][0]), 4),
                    "val_accuracy": sv.tune.val_accuracy,
                    "test_accuracy": accuracy(sv.net, test.images, test.labels),
                    "line": round(anchor_line(anchors, flops), 4),
                    "passes": sv.tune.epochs_run,
                    "best_epoch": sv.tune.best_epoch,
                    "seconds": sv.tune_seconds,
                    "unshared_params": unshared_params(sv.net, suffix),
                }
                rows.append(row)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
        per = {}
        for c in candidates:
            rs = [r for r in rows if r["id"] == c.point.variant_id]
            acc = [r["test_accuracy"] for r in rs]
            per[c.point.variant_id] = (
                f"{100 * np.mean(acc):.1f} +- {100 * (max(acc) - min(acc)) / 2:.1f} "
                f"(line {100 * rs[0]['line']:.1f}, train {100 * np.mean([r['train_accuracy'] for r in rs]):.1f}, "
                f"val {100 * np.mean([r['val_accuracy'] for r in rs]):.1f}, "
                f"{np.mean([r['seconds'] for r in rs]):.1f} s)"
            )
        above = sum(
            np.mean([r["test_accuracy"] for r in rows if r["id"] == i]) > next(r["line"] for r in rows if r["id"] == i)
            for i in per
        )
        summary[name] = {"candidates": per, "above_line": int(above)}
        print(name, json.dumps(summary[name], indent=1), flush=True)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"wall {time.perf_counter() - t:.0f} s")
