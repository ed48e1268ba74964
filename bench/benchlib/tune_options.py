"""Tuning options whose experiments lost (README, *Measured*), for ``bench_tune_ideas.py`` to re-run them.

The package tunes with Adam, a cosine schedule and plain cross-entropy + distillation on the cached features
(``restnet_compile.stitching.tuning.loop``). This research loop adds, per :class:`TuneOptions`:

* ``augment: shift``: each cached feature map translated by its own random offset of up to one cell, border
  replicated (token features pass unchanged);
* ``schedule: constant``: no learning-rate decay;
* ``weight_decay``: decoupled weight decay (AdamW);
* ``label_smoothing`` of the cross-entropy term;
* ``ema``: evaluate and keep an exponential moving average of the weights (decay per step);

and trains ``extra`` parameters of the suffix with the adapter (``suffix_ideas``). :func:`options_recipe` registers a
bench-local recipe that runs it, so ``build_stitched`` uses it through ``tune.recipe``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchlib.suffix_ideas import SUFFIX_IDEAS, recalibrate, trained_params
from restnet_compile.config.build import TuneSettings
from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.tuning.loop import (
    CachedSplit,
    TuneResult,
    distill_loss,
    fixed_split,
    frozen_tail,
    split_accuracy,
)
from restnet_compile.stitching.tuning.recipes import RECIPES, Recipe, RecipeData, match_from_ls


@dataclass(frozen=True)
class TuneOptions:
    """The research options (defaults: the package's behaviour)."""

    augment: str = "none"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    ema: float = 0.0


def shift_maps(feats: torch.Tensor, gen: torch.Generator, cells: int = 1) -> torch.Tensor:
    """Translate each ``B, C, H, W`` map by its own random offset of up to ``cells`` cells in each direction.

    The border is replicated (the digits' background), so a shifted map looks like the features of a shifted image:
    the prefix is convolutional, hence translation-equivariant up to its stride. Token features pass unchanged.
    """
    if feats.dim() != 4:
        return feats
    b, _, h, w = feats.shape
    k = 2 * cells + 1
    padded = F.pad(feats, (cells, cells, cells, cells), mode="replicate")
    offset = torch.randint(0, k * k, (b,), generator=gen)
    out = torch.empty_like(feats)
    for o in range(k * k):
        rows = (offset == o).nonzero().squeeze(1)
        if len(rows):
            dy, dx = divmod(o, k)
            out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


AUGMENTS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "none": lambda feats, gen: feats,
    "shift": shift_maps,
}
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]] = {
    "constant": lambda opt, steps: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
    "cosine": lambda opt, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)),
}


@contextmanager
def _swapped(params: list[nn.Parameter], values: list[torch.Tensor] | None) -> Iterator[None]:
    """Hold ``values`` in ``params`` inside the block (nothing when ``values`` is None)."""
    if values is None:
        yield
        return
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(v)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, v in zip(params, saved, strict=True):
                p.copy_(v)


def _loss(
    logits: torch.Tensor, split: CachedSplit, idx: torch.Tensor, cfg: TuneSettings, opts: TuneOptions
) -> torch.Tensor:
    return distill_loss(logits, split.labels[idx], split.teacher[idx], cfg, opts.label_smoothing)


def tune_with_options(
    net: StitchedNet,
    data: RecipeData,
    cfg: TuneSettings,
    opts: TuneOptions,
    seed: int,
    extra: list[nn.Parameter] | None = None,
) -> TuneResult:
    """The package's adapter tuning with ``opts``, training ``extra`` suffix parameters too.

    BatchNorm statistics stay frozen; the best state on validation is kept, the start included. With the default
    options and no ``extra`` it gives bitwise the package's ``tune_adapter`` result.
    """
    extra = extra or []
    gen = torch.Generator().manual_seed(seed)
    train, val = fixed_split(net, data.train), fixed_split(net, data.val)
    params = list(net.adapter.parameters()) + extra
    for p in params:
        p.requires_grad_(True)
    net.eval()
    if extra:  # the suffix trains: run it as it is, unfolded

        def run(feats: torch.Tensor) -> torch.Tensor:
            return net.head(net.suffix(net.adapter.trainable(feats)))

    else:
        run = frozen_tail(net)
    kept: nn.Module = net if extra else net.adapter
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=opts.weight_decay, foreach=True)
    sched = SCHEDULES[opts.schedule](opt, cfg.epochs * -(-len(train.labels) // cfg.batch_size))
    average = [p.detach().clone() for p in params] if opts.ema > 0 else None
    best = init = split_accuracy(run, val)
    state, best_epoch, epoch = copy.deepcopy(kept.state_dict()), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(train.labels), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = _loss(run(AUGMENTS[opts.augment](train.feats[idx], gen)), train, idx, cfg, opts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for a, p in zip(average or [], params, strict=False):
                a.lerp_(p.detach(), 1 - opts.ema)
        with _swapped(params, average):
            acc = split_accuracy(run, val)
            if acc > best:
                best, state, best_epoch = acc, copy.deepcopy(kept.state_dict()), epoch
        if epoch - best_epoch >= cfg.patience:
            break
    kept.load_state_dict(state)
    for p in params:
        p.requires_grad_(False)
    return TuneResult(round(init, 4), round(best, 4), epoch, best_epoch)


def options_recipe(base: str, opts: TuneOptions, suffix: str = "frozen") -> str:
    """The name of the recipe that runs ``base`` with ``opts`` and the suffix idea ``suffix`` applied at its step.

    That is ``base`` itself when nothing differs from the package, else a bench-local recipe registered on first use.
    ``base`` is ``distill`` or ``ls+feature-match+distill`` (``ls-only`` takes no options).
    """
    if suffix not in SUFFIX_IDEAS:
        raise SystemExit(f"suffix: unknown idea {suffix!r}; valid: {', '.join(SUFFIX_IDEAS)}")
    if (opts == TuneOptions() and suffix == "frozen") or base == "ls-only":
        return base
    name = "bench-" + "-".join([base, suffix, *(f"{k}={v}" for k, v in asdict(opts).items())])
    if name in RECIPES:
        return name

    def run(net: StitchedNet, data: RecipeData, cfg: TuneSettings, seed: int) -> TuneResult:
        init, matched = match_from_ls(net, data, cfg, seed) if base != "distill" else (None, 0)
        if suffix == "recalibrate-before":
            recalibrate(net, fixed_split(net, data.train).feats)
        res = tune_with_options(net, data, cfg, opts, seed, trained_params(net, suffix))
        init = res.val_accuracy_init if init is None else init
        if suffix == "recalibrate-after":  # reported as measured after the re-estimation, even when it lost
            recalibrate(net, fixed_split(net, data.train).feats)
            return TuneResult(init, round(split_accuracy(net.from_prefix, data.val), 4), matched + res.epochs_run, 0)
        return TuneResult(init, max(res.val_accuracy, res.val_accuracy_init), matched + res.epochs_run, res.best_epoch)

    RECIPES.register(name)(Recipe(run, needs_targets=base != "distill"))
    return name
