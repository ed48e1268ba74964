"""A uniform block decomposition shared by every model family.

A model is a sequence of blocks followed by a head. Block ``k`` maps the output of block ``k-1`` (or the image for
``k == 0``) to a feature of a known kind: a feature map ``C x H x W`` or a token sequence ``N x D``. Stitching cuts
the sequence between two blocks, so every model that can be written as a ``BlockSequence`` can be stitched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

FeatureKind = Literal["map", "tokens"]


@dataclass(frozen=True)
class FeatureSpec:
    """Shape of one block's output for a single image (no batch dimension).

    Attributes:
        kind: "map" for ``C x H x W`` feature maps, "tokens" for ``N x D`` token sequences.
        shape: ``(C, H, W)`` or ``(N, D)``.
    """

    kind: FeatureKind
    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        """Channels of a map, embedding width of tokens."""
        return self.shape[0] if self.kind == "map" else self.shape[1]

    @property
    def resolution(self) -> tuple[int, int] | int:
        """Spatial size ``(H, W)`` of a map, or the token count."""
        return (self.shape[1], self.shape[2]) if self.kind == "map" else self.shape[0]

    def describe(self) -> str:
        """Short text such as ``map 32x14x14`` or ``tokens 50x64``."""
        return f"{self.kind} " + "x".join(str(s) for s in self.shape)


class BlockSequence(nn.Module):
    """A model as ``blocks`` then ``head``; ``forward`` runs them all.

    Args:
        blocks: The blocks, in order.
        head: Maps the last block's output to logits.
        input_shape: ``(C, H, W)`` of one input image.
        name: Registered model name, for messages and the manifest.
    """

    def __init__(self, blocks: list[nn.Module], head: nn.Module, input_shape: tuple[int, int, int], name: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.input_shape = input_shape
        self.model_name = name
        self._specs: list[FeatureSpec] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Run blocks ``start .. stop-1`` on ``x`` (the output of block ``start-1``)."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output for the batch ``x``, in order."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    def feature_specs(self) -> list[FeatureSpec]:
        """The kind and shape of every block's output, found by one dummy forward pass."""
        if self._specs is None:
            was_training = self.training
            self.eval()
            with torch.no_grad():
                outs = self.block_outputs(torch.zeros(1, *self.input_shape))
            self.train(was_training)
            self._specs = [_spec_of(o) for o in outs]
        return self._specs


def _spec_of(t: torch.Tensor) -> FeatureSpec:
    if t.dim() == 4:
        return FeatureSpec("map", tuple(int(s) for s in t.shape[1:]))
    if t.dim() == 3:
        return FeatureSpec("tokens", tuple(int(s) for s in t.shape[1:]))
    raise ValueError(f"a block output must be a map (B,C,H,W) or tokens (B,N,D); got shape {tuple(t.shape)}")
