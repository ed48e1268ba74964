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
from restnet_compile.data import Dataset, Images, Splits
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence
from restnet_compile.models.batching import forward_rows
from restnet_compile.pipeline.state import Variant
from restnet_compile.stitching import StitchedVariant
from restnet_compile.stitching.net import ANCHOR_IDS


@torch.no_grad()
def scored(
    module: nn.Module, images: Images, labels: np.ndarray[Any, Any], batch: int | None = None
) -> tuple[float, int]:
    """Top-1 accuracy in eval mode, rounded to 4 decimals, and the index of the first image whose logits hold a NaN or
    an infinity (-1 when none; such an image counts as a miss). ``batch``: images per forward pass, default
    :func:`~restnet_compile.models.batching.forward_rows`."""
    module.eval()
    batch = batch or forward_rows(module)
    hits, first = 0, -1
    for i in range(0, len(labels), batch):
        logits = module(torch.from_numpy(images[i : i + batch]))
        finite = torch.isfinite(logits).all(1).numpy()
        hits += int(((logits.argmax(1).numpy() == labels[i : i + batch]) & finite).sum())
        if first < 0 and not finite.all():
            first = i + int(np.flatnonzero(~finite)[0])
    return round(hits / len(labels), 4), first


def accuracy(module: nn.Module, images: Images, labels: np.ndarray[Any, Any], batch: int | None = None) -> float:
    """Top-1 accuracy in eval mode, rounded to 4 decimals (logits that are not finite count as misses)."""
    return scored(module, images, labels, batch)[0]


def nonfinite(variant: str, split: str, image: int) -> str:
    """The one line that says a variant's logits are not finite where its accuracy on ``split`` is measured."""
    return f"variant {variant}: non-finite logits at {split} accuracy (image {image} of the {split} split)"


def checked_accuracy(variant: str, module: nn.Module, data: Dataset, split: str) -> float:
    """:func:`accuracy` of an anchor model on the ``split`` split ``data``.

    Raises:
        BadInputError: a logit is NaN or infinite (named: the variant, the stage and the image).
    """
    acc, first = scored(module, data.images, data.labels)
    if first >= 0:
        raise BadInputError(f"{nonfinite(variant, split, first)}; its weights or their input are broken")
    return acc


def anchor_variant(kind: str, model: BlockSequence, splits: Splits, cost: CostReport) -> Variant:
    """A whole anchor (``large``, ``small``, a family's ``middle``...) as a variant, of estimated ``cost`` (see
    :mod:`.screen`).

    Raises:
        BadInputError: the model's logits are not finite on the validation or test split.
    """
    return Variant(
        id=kind,
        kind=f"anchor-{kind}",
        module=model,
        stitch=StitchInfo(description=f"{kind} model, all {len(model.blocks)} blocks"),
        val_accuracy=checked_accuracy(kind, model, splits.val, "validation"),
        test_accuracy=checked_accuracy(kind, model, splits.test, "test"),
        cost=cost,
    )


def stitched_variant(sv: StitchedVariant, splits: Splits, cost: CostReport, family: bool = False) -> Variant:
    """A tuned stitched network as a variant of estimated ``cost`` (its validation accuracy is the tuning's); one
    whose logits are not finite is kept as unusable, with that reason. ``family``: record the back donor too (a
    family's stitch joins two of its K anchors)."""
    c = sv.candidate
    front, back = ANCHOR_IDS[c.point.front_tag], ANCHOR_IDS[c.point.back_tag]
    test_accuracy, first = scored(sv.net, splits.test.images, splits.test.labels)
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
            back=back if family else None,
            description=f"{front}[0..{c.point.front_block}] -> {c.adapter} -> {back}[{c.point.back_block + 1}..]",
        ),
        val_accuracy=sv.tune.val_accuracy,
        test_accuracy=test_accuracy,
        cost=cost,
        tune=TuneInfo(
            val_accuracy_init=sv.tune.val_accuracy_init,
            val_accuracy=sv.tune.val_accuracy,
            epochs_run=sv.tune.epochs_run,
            best_epoch=sv.tune.best_epoch,
        ),
        unusable=nonfinite(c.point.variant_id, "test", first) if first >= 0 else None,
    )


def on_profile(variants: list[Variant], costs: dict[str, CostReport]) -> list[Variant]:
    """``variants`` with their costs on another profile (``costs``: variant id -> cost); accuracies stay."""
    return [dataclasses.replace(v, cost=costs[v.id], decision=None) for v in variants]
