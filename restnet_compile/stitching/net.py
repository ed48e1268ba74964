"""A stitched network: the large model's prefix, an adapter, the small model's suffix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from restnet_compile.config.build import MAX_ANCHORS
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.stitching.adapters import Adapter

#: Anchor letter -> anchor id (also the ``model`` of its segments); ``L`` is the largest anchor, ``S`` the smallest.
ANCHOR_IDS = {
    "L": "large",
    "M": "middle",
    "N": "middle2",
    "O": "middle3",
    "P": "middle4",
    "Q": "middle5",
    "R": "middle6",
    "S": "small",
}
assert len(ANCHOR_IDS) == MAX_ANCHORS


def anchor_tags(k: int) -> tuple[str, ...]:
    """The letters of a family of ``k`` anchors, largest first: ``L``, ``M``, ... and ``S`` last."""
    if not 2 <= k <= MAX_ANCHORS:
        raise ValueError(f"a family has 2 to {MAX_ANCHORS} anchors, not {k}")
    return ("L", *"MNOPQR"[: k - 2], "S")


@dataclass(frozen=True)
class StitchPoint:
    """Where to cut: keep ``front`` blocks ``0..front_block``, resume ``back`` after ``back_block``.

    Attributes:
        front_block: Last block of the front model that is kept.
        back_block: Block of the back model whose output the adapter imitates; the suffix starts after it.
        front_tag: Letter of the front model in ids: ``L`` (large, the default ReStNet order) or ``S``, or a family
            anchor's (see :data:`ANCHOR_IDS`).
        back_tag: Letter of the back model in ids.
    """

    front_block: int
    back_block: int
    front_tag: str = "L"
    back_tag: str = "S"

    @property
    def variant_id(self) -> str:
        """Stable id such as ``L1-S0`` (large prefix, small suffix) or ``S1-L3`` (small -> large order)."""
        return f"{self.front_tag}{self.front_block}-{self.back_tag}{self.back_block}"


class StitchedNet(nn.Module):
    """``front.blocks[:i+1] -> adapter -> back.blocks[j+1:] -> back.head``; both models stay frozen."""

    def __init__(self, front: BlockSequence, back: BlockSequence, point: StitchPoint, adapter: Adapter) -> None:
        super().__init__()
        self.point = point
        self.prefix = nn.Sequential(*front.blocks[: point.front_block + 1])
        self.adapter = adapter
        self.suffix = nn.Sequential(*back.blocks[point.back_block + 1 :])
        self.head = back.head
        self._shapes = [*front.activation_shapes(), *back.activation_shapes()]

    def activation_shapes(self) -> list[tuple[int, ...]]:
        """One image's activations as :mod:`~restnet_compile.models.batching` counts them: both donors' (a bound
        on what the prefix, the adapter and the suffix hold)."""
        return list(self._shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_prefix(self.prefix(x))

    def from_prefix(self, feats: torch.Tensor) -> torch.Tensor:
        """Run adapter, suffix and head on cached prefix features."""
        return self.head(self.suffix(self.adapter(feats)))

    def from_fixed(self, feats: torch.Tensor) -> torch.Tensor:
        """Run the adapter's trainable stage, suffix and head on features already through ``adapter.fixed``."""
        return self.head(self.suffix(self.adapter.trainable(feats)))
