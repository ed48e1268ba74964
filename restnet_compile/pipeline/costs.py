"""Stage 5: every variant (both anchors and each tuned stitch) measured: accuracy, with the costs screened before.

Accuracy is the same on every profile and measured once; the estimated costs come from :mod:`.screen`, which
measured the same architectures (costs depend on shapes only) before any tuning.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from restnet_compile.bundle.manifest import StitchInfo, TuneInfo
from restnet_compile.cost import CostReport
from restnet_compile.data import Images, Splits
from restnet_compile.models import BlockSequence
from restnet_compile.models.batching import forward_rows
from restnet_compile.pipeline.state import Variant
from restnet_compile.stitching import StitchedVariant


@torch.no_grad()
def accuracy(module: nn.Module, images: Images, labels: np.ndarray[Any, Any], batch: int | None = None) -> float:
    """Top-1 accuracy in eval mode, rounded to 4 decimals (``batch``: images per forward pass, default
    :func:`~restnet_compile.models.batching.forward_rows`)."""
    module.eval()
    batch = batch or forward_rows(module)
    hits = sum(
        int((module(torch.from_numpy(images[i : i + batch])).argmax(1).numpy() == labels[i : i + batch]).sum())
        for i in range(0, len(labels), batch)
    )
    return round(hits / len(labels), 4)


def anchor_variant(kind: str, model: BlockSequence, splits: Splits, cost: CostReport) -> Variant:
    """The whole ``large`` or ``small`` model as a variant, of estimated ``cost`` (see :mod:`.screen`)."""
    return Variant(
        id=kind,
        kind=f"anchor-{kind}",
        module=model,
        stitch=StitchInfo(description=f"{kind} model, all {len(model.blocks)} blocks"),
        val_accuracy=accuracy(model, splits.val.images, splits.val.labels),
        test_accuracy=accuracy(model, splits.test.images, splits.test.labels),
        cost=cost,
    )


def stitched_variant(sv: StitchedVariant, splits: Splits, cost: CostReport) -> Variant:
    """A tuned stitched network as a variant of estimated ``cost`` (its validation accuracy is the tuning's)."""
    c = sv.candidate
    front, back = ("small", "large") if c.point.front_tag == "S" else ("large", "small")
    return Variant(
        id=c.point.variant_id,
        kind="stitched",
        module=sv.net,
        stitch=StitchInfo(
            front_block=c.point.front_block,
            back_block=c.point.back_block,
            adapter=c.adapter,
            cka=round(c.cka, 4),
            ls_r2=sv.ls_r2,
            front=front,
            description=f"{front}[0..{c.point.front_block}] -> {c.adapter} -> {back}[{c.point.back_block + 1}..]",
        ),
        val_accuracy=sv.tune.val_accuracy,
        test_accuracy=accuracy(sv.net, splits.test.images, splits.test.labels),
        cost=cost,
        tune=TuneInfo(
            val_accuracy_init=sv.tune.val_accuracy_init,
            val_accuracy=sv.tune.val_accuracy,
            epochs_run=sv.tune.epochs_run,
            best_epoch=sv.tune.best_epoch,
        ),
    )


def on_profile(variants: list[Variant], costs: dict[str, CostReport]) -> list[Variant]:
    """``variants`` with their costs on another profile (``costs``: variant id -> cost); accuracies stay."""
    return [dataclasses.replace(v, cost=costs[v.id], decision=None) for v in variants]
