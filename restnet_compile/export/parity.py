"""Parity of every exported variant with PyTorch, measured through the device runtime on the test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from restnet_compile.config.device import Target
from restnet_compile.data import Images
from restnet_compile.models.batching import MAX_ROWS, forward_rows


class VariantRunner(Protocol):
    """What parity needs of a bundle: logits of one variant (the device runtime's ``Bundle`` is one)."""

    def run(self, images: np.ndarray, variant: str) -> np.ndarray:
        """Logits of ``variant`` for float images ``N x C x H x W`` in [0, 1]."""
        ...


@dataclass(frozen=True)
class ParityResult:
    """How one exported variant compares with its PyTorch reference.

    Attributes:
        max_abs_diff: Largest |logit difference|.
        top1_agreement: Share of images where the argmax matches PyTorch's.
        accuracy: Accuracy of the exported model.
        accuracy_torch: Accuracy of the PyTorch fp32 model on the same images.
        failures: Tolerances of the target that were broken (empty: parity holds).
    """

    max_abs_diff: float
    top1_agreement: float
    accuracy: float
    accuracy_torch: float
    failures: tuple[str, ...]


@torch.no_grad()
def torch_logits(module: nn.Module, images: Images, batch: int | None = None) -> np.ndarray:
    """Reference logits from PyTorch, ``batch`` images at a time (default: the module's
    :func:`~restnet_compile.models.batching.forward_rows`)."""
    module.eval()
    batch = batch or forward_rows(module)
    return np.concatenate(
        [module(torch.from_numpy(images[i : i + batch])).numpy() for i in range(0, len(images), batch)]
    )


def check_parity(
    bundle: VariantRunner,
    variant: str,
    reference: np.ndarray,
    images: Images,
    labels: np.ndarray,
    target: Target,
    batch: int = MAX_ROWS,
) -> ParityResult:
    """Run ``variant`` of ``bundle`` on ``images`` (``batch`` at a time) and compare with the ``reference`` logits."""
    out = np.concatenate([bundle.run(images[i : i + batch], variant) for i in range(0, len(images), batch)])
    diff = float(np.abs(out - reference).max())
    agree = float((out.argmax(1) == reference.argmax(1)).mean())
    acc = float((out.argmax(1) == labels).mean())
    acc_torch = float((reference.argmax(1) == labels).mean())
    tol = target.parity
    failures = []
    if tol.max_abs_diff is not None:
        scale = float(np.abs(reference).max()) if len(reference) else 0.0
        allowed = tol.max_abs_diff + (tol.max_rel_diff or 0.0) * scale
        if diff > allowed:
            rel = f" + {tol.max_rel_diff:.0e} x max |logit| {scale:.3g}" if tol.max_rel_diff else ""
            failures.append(f"{target.dtype} max |diff| {diff:.2e} > {tol.max_abs_diff:.0e}{rel}")
    if tol.min_top1_agreement is not None and agree < tol.min_top1_agreement:
        failures.append(f"{target.dtype} top-1 agreement {agree:.1%} < {tol.min_top1_agreement:.0%}")
    if tol.max_accuracy_drop is not None and acc_torch - acc > tol.max_accuracy_drop:
        failures.append(f"{target.dtype} accuracy drop {acc_torch - acc:.1%} > {tol.max_accuracy_drop:.0%}")
    return ParityResult(round(diff, 6), round(agree, 4), round(acc, 4), round(acc_torch, 4), tuple(failures))
