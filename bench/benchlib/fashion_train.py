"""Seeded plain-torch training of the Fashion-MNIST benchmark's two architectures on the build's training split.

The images are read by the build's own data source (``idx:DIR`` at 3 x 32 x 32), split by the build's own rule with
the benchmark's split sizes and seed, so the models never see the calibration, validation or test images the build
measures them on. SGD with momentum and a one-cycle cosine rate, random horizontal flips; BatchNorm statistics are
re-estimated on 4,096 training images at the end (``estimate_batchnorm``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restnet_compile.data import Splits


def train_model(
    model: nn.Module, splits: Splits, out: Path, epochs: int, seed: int = 0, batch: int = 128, lr: float = 0.1
) -> dict[str, float]:
    """Train ``model`` on ``splits.train`` and save its ``state_dict`` to ``out``; its accuracy on the validation
    and test splits, and the seconds it took."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(np.asarray(splits.train.images))
    labels = torch.from_numpy(np.asarray(splits.train.labels))
    steps = epochs * (len(images) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(images)))
        for k in range(len(images) // batch):
            idx = order[k * batch : (k + 1) * batch]
            x, y = images[idx], labels[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    return finish(model, splits, out, {"train_seconds": round(seconds, 1), "epochs": epochs})


def finish(model: nn.Module, splits: Splits, out: Path, info: dict) -> dict[str, float]:
    """Re-estimate BatchNorm statistics, save the ``state_dict`` to ``out``; its validation and test accuracy."""
    images = torch.from_numpy(np.asarray(splits.train.images[:4096]))
    estimate_batchnorm(model, images)
    torch.save(model.state_dict(), out)
    return {
        "val_accuracy": accuracy(model, splits.val.images, splits.val.labels),
        "test_accuracy": accuracy(model, splits.test.images, splits.test.labels),
        **info,
        "train_images": len(splits.train),
    }


def estimate_batchnorm(model: nn.Module, images: torch.Tensor, batch: int = 256) -> None:
    """Replace every BatchNorm's running statistics by their average over ``images`` (in training-mode passes),
    then set eval mode. torchvision's MNASNet keeps TensorFlow's BatchNorm momentum (0.0003): after a few hundred
    steps its running statistics are still near their initial values, and the model in eval mode guesses."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for k in range(0, len(images), batch):
            model(images[k : k + batch])
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: object, labels: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy of ``model`` in eval mode."""
    model.eval()
    right = 0
    for i in range(0, len(labels), batch):
        x = torch.from_numpy(np.asarray(images[i : i + batch]))  # type: ignore[index]
        right += int((model(x).argmax(1).numpy() == labels[i : i + batch]).sum())
    return right / len(labels)
