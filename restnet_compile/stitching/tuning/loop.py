"""Adapter-only fine-tuning with cached prefix features.

Both models are frozen in eval mode (BatchNorm statistics frozen). The front model's prefix features and its logits
(for distillation) are computed once per split and cached (features in a store of :mod:`.store`: memory, a file, or
recomputed), so each epoch runs only adapter + back suffix. The best
state on the validation split is kept, the least-squares initialisation (epoch 0) included, so tuning never returns a
worse adapter than it started from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from restnet_compile.config.build import TuneSettings
from restnet_compile.data import Dataset
from restnet_compile.models.batching import forward_rows, image_bytes, rows_for, tensor_bytes
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.tuning.store import ComputedRows, Rows, RowsWriter, StoreKind, rows_of


@dataclass(frozen=True)
class CachedSplit:
    """Prefix features and teacher logits (stores, or tensors kept in memory) and labels of one split."""

    feats: Rows
    teacher: Rows
    labels: torch.Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "feats", rows_of(self.feats))
        object.__setattr__(self, "teacher", rows_of(self.teacher))


class PrefixRows:
    """The ``model``'s output after block ``stop - 1`` for rows of ``images``, computed on the model's device."""

    def __init__(self, model: BlockSequence, stop: int, images: object) -> None:
        self.model, self.stop, self.images = model, stop, images

    @torch.no_grad()
    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        device = next(self.model.parameters(), torch.empty(0)).device
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx])).to(device)  # type: ignore[index]
        return self.model.run_blocks(x, 0, self.stop)


@dataclass(frozen=True)
class TuneResult:
    """What tuning did: accuracy after init and after tuning (validation split), epochs run, best epoch."""

    val_accuracy_init: float
    val_accuracy: float
    epochs_run: int
    best_epoch: int


@torch.no_grad()
def cache_split(net: StitchedNet, teacher: torch.nn.Module, ds: Dataset, batch: int = 250) -> CachedSplit:
    """Run the frozen prefix (and the teacher) once over ``ds``, on the device ``net`` is on (kept in memory)."""
    device = next(net.prefix.parameters(), torch.empty(0)).device
    feats, logits = [], []
    for i in range(0, len(ds), batch):
        x = torch.from_numpy(ds.images[i : i + batch]).to(device)
        feats.append(net.prefix(x))
        logits.append(teacher(x))
    return CachedSplit(rows_of(torch.cat(feats)), rows_of(torch.cat(logits)), torch.from_numpy(ds.labels).to(device))


def pass_rows(front: BlockSequence, cuts: set[int]) -> int:
    """Images per batch of the prefix pass: one forward of ``front`` plus the features kept at every cut."""
    specs = front.feature_specs()
    kept = sum(tensor_bytes(specs[i].shape) for i in cuts)
    return rows_for(image_bytes(front.activation_shapes()) + kept)


@torch.no_grad()
def cut_outputs(front: BlockSequence, x: torch.Tensor, keep: set[int], stop: int) -> dict[int, torch.Tensor]:
    """The outputs of blocks ``keep`` (and of block ``stop - 1``) for the batch ``x``, running blocks
    ``0 .. stop - 1``; no other block output is held."""
    outs = {}
    for i, block in enumerate(front.blocks[:stop]):
        x = block(x)
        if i in keep or i == stop - 1:
            outs[i] = x
    return outs


@torch.no_grad()
def cache_cuts(
    front: BlockSequence,
    teacher: torch.nn.Module,
    cuts: set[int],
    ds: Dataset,
    batch: int | None = None,
    device: str | torch.device = "cpu",
    store: StoreKind = "ram",
    folder: Path | None = None,
) -> dict[int, CachedSplit]:
    """Prefix features at every cut in ``cuts`` and the teacher's logits, from ONE pass over ``ds``.

    When the teacher is the front model (large prefix -> small suffix) its logits come from the same pass, so the
    caching cost of all candidates together is one forward of the large model. The pass runs on ``device`` (where
    both models must be), ``batch`` images at a time (default :func:`pass_rows`); the features and the logits go to a
    ``store`` on the CPU (files in ``folder``). A ``recompute`` store keeps no features: the pass computes only the
    logits, kept in memory.
    """
    writers = {i: RowsWriter(store, len(ds), folder) for i in cuts} if store != "recompute" else {}
    logits_kind: StoreKind = ("mmap" if store == "mmap-fp16" else store) if writers else "ram"  # logits stay fp32
    logits = RowsWriter(logits_kind, len(ds), folder)
    batch = batch or pass_rows(front, set(writers))
    stop = len(front.blocks) if teacher is front else max(writers, default=-1) + 1
    for k in range(0, len(ds), batch):
        x = torch.from_numpy(np.ascontiguousarray(ds.images[k : k + batch])).to(device)
        if writers or teacher is front:
            outs = cut_outputs(front, x, set(writers), stop)
            for i, w in writers.items():
                w.append(outs[i])
            logits.append(front.head(outs[stop - 1]) if teacher is front else teacher(x))
        else:
            logits.append(teacher(x))
    labels = torch.from_numpy(np.asarray(ds.labels))
    teach = logits.finish() if len(ds) else torch.empty((0, 0))
    specs = front.feature_specs()
    feats: dict[int, Rows] = {
        i: writers[i].finish()
        if writers
        else ComputedRows(PrefixRows(front, i + 1, ds.images), (len(ds), *specs[i].shape))
        for i in cuts
    }
    return {i: CachedSplit(feats[i], rows_of(teach), labels) for i in cuts}


@torch.no_grad()
def split_accuracy(run: Callable[[torch.Tensor], torch.Tensor], split: CachedSplit, batch: int = 500) -> float:
    """Accuracy of ``run`` (features -> logits) on the cached features of ``split``; logits that are not finite count
    as misses (so a diverged epoch is never the best)."""
    correct = 0
    for i in range(0, len(split.labels), batch):
        logits = run(split.feats[i : i + batch])
        hit = (logits.argmax(1) == split.labels[i : i + batch]) & torch.isfinite(logits).all(1)
        correct += int(hit.sum())
    return correct / len(split.labels)


def feature_rows(net: StitchedNet) -> int:
    """Rows per batch of a pass over cached features (adapter, suffix, head): up to 500, fewer for large images."""
    return forward_rows(net, most=500)


def cached_accuracy(net: StitchedNet, split: CachedSplit) -> float:
    """Accuracy of ``net`` (in eval mode) on cached prefix features."""
    return split_accuracy(net.eval().from_prefix, split, feature_rows(net))


@torch.no_grad()
def fixed_split(net: StitchedNet, split: CachedSplit, batch: int = 500) -> CachedSplit:
    """``split`` with the adapter's parameter-free stage (the resize) applied once, not at every step."""
    return CachedSplit(split.feats.map(net.adapter.fixed, batch), split.teacher, split.labels)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential`` into that conv.

    Works in place (pass a copy) and leaves every parameter frozen. The folded module computes the same function as
    the original in eval mode, with two fewer element-wise ops per pair in the forward and backward passes.
    """
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        mods = list(module)
        for k in range(len(mods) - 1):
            conv, bn = mods[k], mods[k + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module[k], module[k + 1] = fuse_conv_bn_eval(conv.eval(), bn.eval()), nn.Identity()
    return module.requires_grad_(False)


def frozen_tail(net: StitchedNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net.from_fixed`` with a BatchNorm-folded copy of the frozen suffix and head, for tuning the adapter.

    Only the adapter trains, so the suffix needs input gradients alone (its parameters stay frozen) and its
    frozen BatchNorm layers can be folded into the preceding convs; ``net`` itself is left unchanged.
    """
    tail = fold_batchnorm(copy.deepcopy(nn.Sequential(net.suffix, net.head))).eval()
    return lambda feats: tail(net.adapter.trainable(feats))


def distill_loss(
    logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor, cfg: TuneSettings, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy on ``labels``, mixed with ``cfg.distill_weight`` of the distillation loss on the ``teacher``'s
    logits at ``cfg.temperature`` (scaled by its square)."""
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if cfg.distill_weight > 0:
        t = cfg.temperature
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
        loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd * t * t
    return loss


def _loss(
    run: Callable[[torch.Tensor], torch.Tensor], split: CachedSplit, idx: torch.Tensor, cfg: TuneSettings
) -> torch.Tensor:
    idx = idx.to(split.feats.device)
    return distill_loss(run(split.feats[idx]), split.labels[idx], split.teacher[idx], cfg)


def _run_epoch(
    run: Callable[[torch.Tensor], torch.Tensor],
    split: CachedSplit,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    cfg: TuneSettings,
    gen: torch.Generator,
) -> None:
    """One pass over ``split`` in a seeded random order: loss (``cfg``), optimiser and schedule step per batch."""
    order = torch.randperm(len(split.labels), generator=gen)
    for i in range(0, len(order), cfg.batch_size):
        loss = _loss(run, split, order[i : i + cfg.batch_size], cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def tune_adapter(net: StitchedNet, train: CachedSplit, val: CachedSplit, cfg: TuneSettings, seed: int) -> TuneResult:
    """Fine-tune ``net.adapter`` alone; leave ``net`` holding the best adapter on ``val``.

    Adam with a cosine learning-rate schedule over ``cfg.epochs``, loss and early stop as ``cfg`` says.
    """
    frozen = [p for name, p in net.named_parameters() if not name.startswith("adapter.") and p.requires_grad]
    if frozen:
        raise ValueError("tune_adapter needs frozen donor models (create_model freezes them)")
    for p in net.adapter.parameters():
        p.requires_grad_(True)
    net.eval()  # frozen BatchNorm statistics in the suffix and in the adapter (a trainable affine map there)
    gen = torch.Generator().manual_seed(seed)
    rows = feature_rows(net)
    train, val, run = fixed_split(net, train, rows), fixed_split(net, val, rows), frozen_tail(net)
    opt = torch.optim.Adam(net.adapter.parameters(), lr=cfg.lr, foreach=True)
    steps = cfg.epochs * -(-len(train.labels) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    best_acc = init_acc = split_accuracy(run, val, rows)
    best_state, best_epoch, epoch = copy.deepcopy(net.adapter.state_dict()), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        _run_epoch(run, train, opt, sched, cfg, gen)
        acc = split_accuracy(run, val, rows)
        if acc > best_acc:
            best_acc, best_state, best_epoch = acc, copy.deepcopy(net.adapter.state_dict()), epoch
        if epoch - best_epoch >= cfg.patience:
            break
    net.adapter.load_state_dict(best_state)
    for p in net.adapter.parameters():
        p.requires_grad_(False)
    return TuneResult(round(init_acc, 4), round(best_acc, 4), epoch, best_epoch)
