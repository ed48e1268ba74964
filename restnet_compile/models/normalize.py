"""The preprocessing contract inside the model: per-channel normalisation as the first op of block 0.

A donor sees exactly what it was trained on when ``(x - mean) / std`` runs inside it. Putting that op in front of
block 0 makes CKA, least-squares init, tuning, int8 calibration, accuracy and parity all see the training
distribution, and makes every exported variant take pixels in ``[0, 1]``: a stitched variant's input passes through
its prefix donor's normalisation, an anchor's through its own.
"""

from __future__ import annotations

import torch
from torch import nn

from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence, Normalization


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel of an ``N x C x H x W`` image batch."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def fit_channels(values: tuple[float, ...], channels: int, what: str, model: str) -> tuple[float, ...]:
    """``values`` for ``channels`` input channels: as given, or one value per channel when one is given.

    Raises:
        BadInputError: another count (the message names the field, the model and its channel count).
    """
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values) * channels
    raise BadInputError(f"{what} has {len(values)} values but model {model} takes {channels} channel(s)")


def normalized(model: BlockSequence, norm: Normalization) -> BlockSequence:
    """``model`` with ``norm`` as the first op of its block 0 (``model`` itself when ``norm`` is the identity)."""
    if norm.identity:
        return model
    blocks = [nn.Sequential(Normalize(norm.mean, norm.std), model.blocks[0]), *model.blocks[1:]]
    out = BlockSequence(blocks, model.head, model.input_shape, model.model_name, model.block_names)
    out.requires_grad_(False)
    return out.eval()
