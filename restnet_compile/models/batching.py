"""How many images one forward batch holds, so that a build's memory does not grow with its images' size or count.

Every pass over a split (accuracies, prefix features, CKA, least-squares targets, parity) runs in batches of at most
:data:`MAX_ROWS` images, and of fewer where one image's activations are large: a batch holds about
:data:`BATCH_BYTES` of float32 activations. One image's forward pass is taken to hold three times its largest
activation (a layer's input, its output and one more), the largest being found among the model's input, its block
outputs and the output of every layer inside a block (a stem's convolution before its pooling, an inverted
residual's expansion).

The budget is a constant rather than the build's ``max_memory``, so batch sizes, and the last bits of what a batch
computes, are the same on every machine. The 28 px demo models stay at :data:`MAX_ROWS`; a 224 px torchvision
ResNet-18 (its stem's 64 x 112 x 112 convolution output) runs 27 images at a time, MobileNetV3-Small 99.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch import nn

BATCH_BYTES = 256 * 2**20  # float32 activations one forward batch may hold
MAX_ROWS = 250  # images per batch where activations are small
FORWARD_FACTOR = 3  # a block's input, its output and one intermediate, per image


def tensor_bytes(shape: Iterable[int]) -> int:
    """float32 bytes of one tensor of ``shape`` (one image's, without the batch dimension)."""
    return int(np.prod(tuple(shape), dtype=np.int64)) * 4


def image_bytes(shapes: Iterable[tuple[int, ...]]) -> int:
    """What one image's forward pass holds at its peak, given the shapes of its input and of its block outputs."""
    return FORWARD_FACTOR * max((tensor_bytes(s) for s in shapes), default=4)


def rows_for(per_image: int, budget: int = BATCH_BYTES, most: int = MAX_ROWS) -> int:
    """Images per batch when each costs ``per_image`` bytes: at least 1, at most ``most``."""
    return max(1, min(most, budget // max(per_image, 1)))


def forward_rows(module: nn.Module, most: int = MAX_ROWS) -> int:
    """Images per forward batch of ``module``, at most ``most``.

    A module that lists its activations (``activation_shapes()``: a block sequence, a stitched network) gets
    :func:`rows_for` of its peak; any other module gets ``most``.
    """
    shapes = getattr(module, "activation_shapes", None)
    return rows_for(image_bytes(shapes()), most=most) if callable(shapes) else most
