"""The exactness check every split passes: the blocks joined compute the original model's logits.

Checked on two seeded random batches (2 images, then 1: the batch of an exported variant) of pixels in ``[0, 1]``;
the largest difference, relative to the largest logit (at least 1), must stay within ``TOLERANCE``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

TOLERANCE = 1e-6
_SEED = 1234


def probe_input(input_shape: tuple[int, ...], batch: int, seed: int = _SEED) -> torch.Tensor:
    """A seeded random batch of pixels in ``[0, 1]``."""
    return torch.rand(batch, *input_shape, generator=torch.Generator().manual_seed(seed + batch))


def largest_difference(
    reference: Callable[[torch.Tensor], torch.Tensor], candidate: nn.Module, input_shape: tuple[int, ...]
) -> float:
    """Largest difference between ``candidate``'s and ``reference``'s logits, relative to the largest logit.

    Raises:
        Exception: whatever ``candidate`` raises on the probe batches.
    """
    worst = 0.0
    with torch.no_grad():
        for batch in (2, 1):
            x = probe_input(input_shape, batch)
            want, got = reference(x), candidate(x)
            if tuple(got.shape) != tuple(want.shape):
                return float("inf")
            scale = max(1.0, float(want.abs().max()))
            worst = max(worst, float((got - want).abs().max()) / scale)
    return worst
