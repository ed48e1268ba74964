"""Suffix ideas for ``bench_tune_ideas.py``: what the frozen small model's BatchNorm and first block can add.

``"suffix": NAME`` in an idea's overrides picks one (the default ``frozen`` is the product's behaviour):

* ``recalibrate-after``: tune as usual, then re-estimate the suffix's BatchNorm statistics on the stitched training
  features (cumulative average, weights untouched).
* ``recalibrate-before``: the same re-estimation after least squares and feature matching, before distillation.
* ``norm``: the suffix's BatchNorm scale and shift train with the adapter (optional item 4 of the issue; the
  statistics stay frozen).
* ``first-block``: every weight of the suffix's first block trains with the adapter (optional item 4).

All but ``frozen`` change weights or statistics of the small model's blocks, which a bundle then cannot share with the
small model itself; the benchmark reports those parameters' count as the extra flash. Each build gets its own copy of
the small model, so ideas never leak into each other. ``tune_options.options_recipe`` applies them.
"""

from __future__ import annotations

import torch
from torch import nn

from restnet_compile.stitching.net import StitchedNet

SUFFIX_IDEAS = ("frozen", "recalibrate-after", "recalibrate-before", "norm", "first-block")


@torch.no_grad()
def recalibrate(net: StitchedNet, feats: torch.Tensor, batch: int = 250) -> None:
    """Re-estimate the suffix's BatchNorm statistics on ``feats`` (already through ``adapter.fixed``)."""
    for m in net.suffix.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the whole pass
    net.suffix.train()
    for i in range(0, len(feats), batch):
        net.suffix(net.adapter.trainable(feats[i : i + batch]))
    net.eval()


def trained_params(net: StitchedNet, idea: str) -> list[nn.Parameter]:
    """The small model's parameters that ``idea`` trains besides the adapter."""
    if idea == "norm":
        return [p for m in net.suffix.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()]
    if idea == "first-block" and len(net.suffix):
        return list(net.suffix[0].parameters())
    return []


def unshared_params(net: StitchedNet, idea: str) -> int:
    """Parameters of the small model's blocks that ``idea`` changes, so that a bundle must store them again.

    A changed BatchNorm (scale, shift or statistics) is folded into its conv at export, so every suffix block that holds
    a BatchNorm counts whole; ``first-block`` counts that block.
    """
    if idea == "frozen":
        return 0
    if idea == "first-block":
        blocks = list(net.suffix)[:1]
    else:
        blocks = [b for b in net.suffix if any(isinstance(m, nn.BatchNorm2d) for m in b.modules())]
    return sum(p.numel() for b in blocks for p in b.parameters())
