"""The blocks of a model as a table: name, output, multiply-adds -- what a user reads to choose ``split:``.

Multiply-adds follow the project's FLOP convention (one fused multiply-add is one FLOP), counted per image with
``torch.utils.flop_counter`` (matrix ops: convolution, linear, matmul, attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from restnet_compile.models.blocks import BlockSequence


@dataclass(frozen=True)
class BlockInfo:
    """One row of the table.

    Attributes:
        index: Block index, or None for the head.
        name: Where the block ends in the original model (a module or graph node name); ``head`` for the head.
        output: The output, such as ``map 32x14x14``, ``tokens 50x64`` or ``logits 10``.
        macs: Multiply-adds per image.
    """

    index: int | None
    name: str
    output: str
    macs: int


def _macs(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    counter = FlopCounterMode(display=False)
    with counter:
        y = module(x)
    return y, int(counter.get_total_flops()) // 2


def block_table(model: BlockSequence) -> list[BlockInfo]:
    """Every block of ``model`` then its head, with outputs and multiply-adds for one image."""
    specs = model.feature_specs()
    was_training = model.training
    model.eval()
    rows = []
    x = torch.zeros(1, *model.input_shape)
    with torch.no_grad():
        for k, (block, spec) in enumerate(zip(model.blocks, specs, strict=True)):
            x, macs = _macs(block, x)
            rows.append(BlockInfo(k, model.block_names[k], spec.describe(), macs))
        logits, macs = _macs(model.head, x)
    rows.append(BlockInfo(None, "head", f"logits {logits.shape[-1]}", macs))
    model.train(was_training)
    return rows


def format_macs(macs: int) -> str:
    """``1.82 G``, ``12.3 M``, ``850 K``, ``12``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.3g} {unit}"
    return str(macs)


def format_block_table(rows: list[BlockInfo]) -> str:
    """The table as aligned text lines: index, name, output, multiply-adds."""
    width = max(len(r.name) for r in rows)
    out_width = max(len(r.output) for r in rows)
    lines = [f"{'#':>3}  {'cut after':<{width}}  {'output':<{out_width}}  multiply-adds"]
    for r in rows:
        index = "" if r.index is None else str(r.index)
        lines.append(f"{index:>3}  {r.name:<{width}}  {r.output:<{out_width}}  {format_macs(r.macs)}")
    return "\n".join(lines)
