"""Deterministic pre-training of the demo zoo: ``python scripts/pretrain_demo_zoo.py`` (``make pretrain``).

All demo models get the same recipe (AdamW, one-cycle schedule, +-2 px random shifts, the same epochs) on the
``train`` split of ``mnist5k``, so the large, middle and small CNN differ by capacity, not by training budget. The
weights and a JSON record with the per-epoch validation curve and the final test accuracy are written to
``restnet_compile/models/weights/`` and ship with the package, so the demo never retrains. ``--models NAME ...``
trains only those models (each model's training is independent of the others, so its bytes do not depend on which
others are trained with it).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from restnet_compile.data import Images, load_dataset, make_splits
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.demo import demo_hybrid_vit, demo_large_cnn, demo_mid_cnn, demo_small_cnn, demo_vit

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "restnet_compile" / "models" / "weights"
TRAINING_RECIPES: dict[str, tuple[Callable[[], BlockSequence], float]] = {
    "demo-large-cnn": (demo_large_cnn, 3e-3),
    "demo-mid-cnn": (demo_mid_cnn, 3e-3),
    "demo-small-cnn": (demo_small_cnn, 3e-3),
    "demo-vit": (demo_vit, 1e-3),
    "demo-hybrid-vit": (demo_hybrid_vit, 3e-3),
}


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with zeros."""
    padded = F.pad(x, (max_shift,) * 4)
    size = x.shape[-1]
    offs = torch.randint(0, 2 * max_shift + 1, (x.shape[0], 2), generator=gen)
    return torch.stack([padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offs.tolist())])


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: Images, labels: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy of ``model`` in eval mode."""
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch):
        logits = model(torch.from_numpy(images[i : i + batch]))
        correct += int((logits.argmax(1).numpy() == labels[i : i + batch]).sum())
    return correct / len(labels)


def train(name: str, epochs: int, seed: int, batch: int = 64) -> tuple[BlockSequence, dict]:
    """Train one demo model from scratch; return it and its training record."""
    factory, lr = TRAINING_RECIPES[name]
    splits = make_splits(load_dataset("mnist5k"), seed=0)
    torch.manual_seed(seed)
    model = factory()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * ((len(splits.train) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(splits.train.images), torch.from_numpy(splits.train.labels)
    curve = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y_all), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(random_shift(x_all[idx], gen)), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val = accuracy(model, splits.val.images, splits.val.labels)
        curve.append({"epoch": epoch + 1, "val_accuracy": round(val, 4), "train_loss": round(float(loss), 4)})
        print(f"{name} epoch {epoch + 1}/{epochs} val {val:.4f}", flush=True)
    record = {
        "model": name,
        "epochs": epochs,
        "seed": seed,
        "params": sum(p.numel() for p in model.parameters()),
        "val_curve": curve,
        "test_accuracy": round(accuracy(model, splits.test.images, splits.test.labels), 4),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return model, record


def main(argv: list[str] | None = None) -> None:
    """Train the demo models and write their weights and records."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(TRAINING_RECIPES),
        choices=list(TRAINING_RECIPES),
        help="train only these models (default: all)",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        model, record = train(name, args.epochs, args.seed)
        torch.save(model.state_dict(), args.out / f"{name}.pt")
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: test accuracy {record['test_accuracy']:.4f}, {record['params']} params", flush=True)


if __name__ == "__main__":
    main()
