"""Feature stores for tuning: ram, mmap (fp32), mmap-fp16 and recompute, side by side on the demo (JSON).

Usage: ``python bench/bench_feature_store.py [--epochs 4] [--rounds 2] [--out bench/results/feature_store.json]``.
The demo pair and data (``mnist10k``), one candidate (the demo's stitch L3-S2, ``conv-bn-relu``), one torch thread.
For every store: the prefix pass that fills it, the time of one distillation epoch from the least-squares start
(``rounds`` rounds, the stores taking turns within each round, so the machine's load touches all alike; the fastest
round counts), and a full tuning with the default recipe over ``epochs`` epochs: its validation and test accuracy,
and how far its adapter is from the ram store's (identical bytes, or the largest weight difference).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from benchlib.files import write_json

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import Candidate, StitchPoint, build_stitched
from restnet_compile.stitching.build import FeatureStore, prefix_cache
from restnet_compile.stitching.tuning.loop import tune_adapter
from restnet_compile.stitching.tuning.store import STORE_KINDS

CANDIDATE = Candidate(StitchPoint(3, 2), 0.0, "conv-bn-relu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="tuning epochs of the accuracy run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the epoch timing")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "feature_store.json")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = BuildConfig()
    large, small = load_models(config)
    splits = load_splits(config, large)
    fill: dict[str, float] = {}
    epoch: dict[str, list[float]] = {k: [] for k in STORE_KINDS}
    tuned: dict[str, dict] = {}
    adapters: dict[str, dict[str, torch.Tensor]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        stores = {k: FeatureStore(k, Path(tmp)) for k in STORE_KINDS}
        caches = {}
        for kind, store in stores.items():
            start = time.perf_counter()
            caches[kind] = prefix_cache(large, large, [CANDIDATE], splits, "cpu", store)
            fill[kind] = round(time.perf_counter() - start, 3)
        ls = TuneSettings(recipe="ls-only")
        one = TuneSettings(epochs=1, patience=1)
        for _ in range(args.rounds):
            for kind, store in stores.items():
                sv = build_stitched(large, small, CANDIDATE, splits, ls, config.seed, dict(caches[kind]), store=store)
                train, val = caches[kind][CANDIDATE.point.front_block]
                start = time.perf_counter()
                tune_adapter(sv.net, train, val, one, config.seed)
                epoch[kind].append(time.perf_counter() - start)
        settings = TuneSettings(epochs=args.epochs, patience=args.epochs)
        for kind, store in stores.items():
            sv = build_stitched(large, small, CANDIDATE, splits, settings, config.seed, dict(caches[kind]), store=store)
            adapters[kind] = {k: v.clone() for k, v in sv.net.adapter.state_dict().items()}
            tuned[kind] = {
                "val_accuracy": sv.tune.val_accuracy,
                "test_accuracy": accuracy(sv.net, splits.test.images, splits.test.labels),
                "tune_seconds": sv.tune_seconds,
            }
    torch.set_num_threads(threads)
    best = {k: min(v) for k, v in epoch.items()}
    for kind in STORE_KINDS:
        ref, mine = adapters["ram"], adapters[kind]
        tuned[kind]["adapter_identical_to_ram"] = all(torch.equal(ref[k], mine[k]) for k in ref)
        diffs = [float((mine[k].float() - ref[k].float()).abs().max()) for k in ref if ref[k].numel()]
        tuned[kind]["adapter_max_abs_diff"] = max(diffs)
        tuned[kind]["epoch_seconds"] = round(best[kind], 3)
        tuned[kind]["epoch_over_ram"] = round(best[kind] / best["ram"], 3)
        tuned[kind]["fill_seconds"] = fill[kind]
    result = {
        "machine": platform.machine(),
        "pair": f"{config.large} -> {config.small}",
        "dataset": config.dataset,
        "candidate": CANDIDATE.point.variant_id,
        "train_images": len(splits.train),
        "epochs": args.epochs,
        "rounds": args.rounds,
        "stores": tuned,
    }
    write_json(args.out, result)
    for kind, r in tuned.items():
        print(kind, r)


if __name__ == "__main__":
    main()
