"""Adapter-only tuning against end-to-end tuning, and each candidate against the anchors' line.

``python bench/bench_stitch_tuning.py [--large M --small M --epochs N --train N --dataset D --out FILE]``

For every candidate the CKA rule picks on the demo pair, in one run and with the same epochs, data, loss (CE + KD
from the large model), least-squares start and best-on-validation selection:

* adapter-only (this project): donors frozen in eval mode, the prefix features of every cut and the teacher's logits
  cached in one pass (each candidate is charged an equal share of that time), only the adapter trains, with the
  build's default adapter and recipe (``tune`` defaults: conv-bn-relu, LS + feature matching + distillation);
* end to end (the SN-Net recipe): the same stitched network (the same adapter kind) trains whole (donor copies in
  train mode, BatchNorm statistics updating), Adam with ``lr`` for the adapter and ``lr / 10`` for the donor blocks.

Reports the time ratio adapter-only / end-to-end (goal <= 0.2, caching included) and the test-accuracy ratio (goal
>= 0.97), and for each candidate its test accuracy minus the straight line between the anchors' (FLOPs, accuracy).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.cost.flops import count_flops
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import ADAPTERS, Candidate, StitchedNet, build_stitched
from restnet_compile.stitching.build import prefix_cache


def end_to_end(
    front: BlockSequence,
    back: BlockSequence,
    teacher: BlockSequence,
    c: Candidate,
    splits: Splits,
    cfg: TuneSettings,
    seed: int = 0,
) -> StitchedNet:
    """Tune the whole stitched network (copies of the donors) from the same least-squares start."""
    front, back = copy.deepcopy(front), copy.deepcopy(back)
    i, j = c.point.front_block, c.point.back_block
    adapter = ADAPTERS.get(c.adapter)(front.feature_specs()[i], back.feature_specs()[j])
    net = StitchedNet(front, back, c.point, adapter)
    x_cal = torch.from_numpy(splits.calib.images)
    with torch.no_grad():
        adapter.least_squares_init(net.prefix(x_cal), back.run_blocks(x_cal, 0, j + 1))
        teacher_logits = torch.cat(
            [teacher(torch.from_numpy(splits.train.images[k : k + 250])) for k in range(0, len(splits.train), 250)]
        )
    net.requires_grad_(True)
    donor_params = [p for n, p in net.named_parameters() if not n.startswith("adapter.")]
    opt = torch.optim.Adam(
        [{"params": adapter.parameters(), "lr": cfg.lr}, {"params": donor_params, "lr": cfg.lr / 10}]
    )
    x_all, y_all = torch.from_numpy(splits.train.images), torch.from_numpy(splits.train.labels)
    gen = torch.Generator().manual_seed(seed)
    best, best_acc = copy.deepcopy(net.state_dict()), accuracy(net, splits.val.images, splits.val.labels)
    for _ in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(y_all), generator=gen)
        for k in range(0, len(order), cfg.batch_size):
            idx = order[k : k + cfg.batch_size]
            logits = net(x_all[idx])
            t = cfg.temperature
            kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits[idx] / t, 1), reduction="batchmean")
            loss = (1 - cfg.distill_weight) * F.cross_entropy(logits, y_all[idx]) + cfg.distill_weight * kd * t * t
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = accuracy(net, splits.val.images, splits.val.labels)
        if acc > best_acc:
            best, best_acc = copy.deepcopy(net.state_dict()), acc
    net.load_state_dict(best)
    return net.eval()


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", default="demo-large-cnn")
    parser.add_argument("--small", default="demo-small-cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=1500, help="training images (of the 3,000 in the split)")
    parser.add_argument("--dataset", default="mnist5k", help="build dataset (mnist10k: 8,000 training images)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/stitch_tuning.json"))
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    config = BuildConfig(large=args.large, small=args.small, dataset=args.dataset)
    large, small = load_models(config)
    torch.set_num_threads(args.threads)
    full = load_splits(config, large)
    splits = Splits(
        full.train.subset(np.arange(min(args.train, len(full.train))), "train"), full.calib, full.val, full.test
    )
    cka = compute_cka(large, small, splits.calib.images, 100)
    p = plan(config, cka, large, small)
    _, candidates, front, back = p.rule, p.candidates, p.front, p.back
    cfg = TuneSettings(epochs=args.epochs, patience=args.epochs + 1)
    test = splits.test
    anchors = {}
    for role, model in (("large", large), ("small", small)):
        anchors[role] = {
            "flops": count_flops(model, model.input_shape).total,
            "test_accuracy": accuracy(model, test.images, test.labels),
        }
    (fs, acc_s), (fl, acc_l) = [(anchors[r]["flops"], anchors[r]["test_accuracy"]) for r in ("small", "large")]
    rows = []
    t = time.perf_counter()
    cache = prefix_cache(front, large, candidates, splits)  # every cut + teacher logits in one pass: timed, shared
    t_cache = (time.perf_counter() - t) / len(candidates)
    for c in candidates:
        t = time.perf_counter()
        sv = build_stitched(front, back, c, splits, cfg, seed=0, cache=cache, teacher=large)
        t_adapter = time.perf_counter() - t + t_cache
        t = time.perf_counter()
        e2e = end_to_end(front, back, large, replace(c, adapter=sv.candidate.adapter), splits, cfg)  # same network
        t_e2e = time.perf_counter() - t
        acc_a, acc_e = accuracy(sv.net, test.images, test.labels), accuracy(e2e, test.images, test.labels)
        flops = count_flops(sv.net, large.input_shape).total
        line = acc_s + (acc_l - acc_s) * (flops - fs) / (fl - fs)
        rows.append(
            {
                "id": c.point.variant_id,
                "adapter": sv.candidate.adapter,
                "cka": round(c.cka, 4),
                "flops": flops,
                "test_accuracy_adapter_only": acc_a,
                "test_accuracy_end_to_end": acc_e,
                "time_ratio": round(t_adapter / t_e2e, 3),
                "accuracy_ratio": round(acc_a / acc_e, 4),
                "anchor_line_accuracy": round(line, 4),
                "above_anchor_line": round(acc_a - line, 4),
                "beats_small": acc_a > acc_s,
                "context_seconds": [round(t_adapter, 2), round(t_e2e, 2)],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    total_a = sum(r["context_seconds"][0] for r in rows)
    total_e = sum(r["context_seconds"][1] for r in rows)
    result = {
        "benchmark": "adapter-only vs end-to-end tuning of the same stitched networks; candidates vs anchor line",
        "pair": f"{args.large} -> {args.small}",
        "epochs": args.epochs,
        "train_images": len(splits.train),
        "test_images": len(test),
        "threads": args.threads,
        "anchors": anchors,
        "time_ratio_all_candidates": round(total_a / total_e, 3),
        "time_goal": 0.2,
        "accuracy_ratio_mean": round(
            float(np.mean([r["test_accuracy_adapter_only"] for r in rows]))
            / float(np.mean([r["test_accuracy_end_to_end"] for r in rows])),
            4,
        ),
        "accuracy_ratio_min": min(r["accuracy_ratio"] for r in rows),
        "accuracy_goal": 0.97,
        "candidates": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "candidates"}, indent=1))


if __name__ == "__main__":
    main()
