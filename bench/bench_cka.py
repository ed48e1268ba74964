"""CKA cost against a plain forward pass: ``python bench/bench_cka.py [--out FILE]``.

Times, in one run and on the same calibration images and minibatches, (a) a plain forward pass of both models that
keeps every block output and (b) ``cka_matrix`` (the same forward passes plus the streaming HSIC sums for every pair of
blocks). Prints and writes JSON with the ratio b / a per model pair (goal: <= 1.25). Absolute times are only context.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from restnet_compile.data import load_dataset, make_splits
from restnet_compile.models import create_model
from restnet_compile.similarity import cka_matrix

PAIRS = [("demo-large-cnn", "demo-small-cnn"), ("demo-large-cnn", "demo-vit"), ("demo-vit", "demo-small-cnn")]


@torch.no_grad()
def plain_forward(models: list, batches: list[np.ndarray]) -> None:
    """Both models over every batch, keeping all block outputs (what CKA needs anyway)."""
    for images in batches:
        x = torch.from_numpy(images)
        for m in models:
            m.block_outputs(x)


def measure(large: str, small: str, batches: list[np.ndarray], repeats: int) -> dict:
    """Median time of the plain forward and of the CKA matrix, interleaved, and their ratio."""
    a, b = create_model(large), create_model(small)
    plain_forward([a, b], batches[:1])  # warm-up
    cka_matrix(a, b, batches[:1])
    fwd, cka = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        plain_forward([a, b], batches)
        fwd.append(time.perf_counter() - t)
        t = time.perf_counter()
        cka_matrix(a, b, batches)
        cka.append(time.perf_counter() - t)
    f, c = statistics.median(fwd), statistics.median(cka)
    return {
        "pair": f"{large} x {small}",
        "blocks": [len(a.blocks), len(b.blocks)],
        "cka_over_forward": round(c / f, 3),
        "goal": 1.25,
        "meets_goal": c / f <= 1.25,
        "context_seconds": {"forward": round(f, 3), "cka": round(c, 3)},
    }


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cka.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    calib = make_splits(load_dataset("mnist5k"), seed=0).calib.images
    batches = [np.ascontiguousarray(calib[i : i + args.batch_size]) for i in range(0, len(calib), args.batch_size)]
    result = {
        "benchmark": "cka_matrix time / plain forward time of both models, same images and batches",
        "images": len(calib),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "pairs": [measure(a, b, batches, args.repeats) for a, b in PAIRS],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
