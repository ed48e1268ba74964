"""Suffix ideas for ``bench_tune_ideas.py``: what the frozen small model's BatchNorm and first block can add.

``"suffix": NAME`` in an idea's overrides picks one (the default ``frozen`` is the product's behaviour):

* ``recalibrate-after``: tune as usual, then re-estimate the suffix's BatchNorm statistics on the stitched training
  features (cumulative average, weights untouched).
* ``recalibrate-before``: the same re-estimation after least squares and feature matching, before distillation.
* ``norm``: the suffix's BatchNorm scale and shift train with the adapter (the statistics stay frozen).
* ``first-block``: every weight of the suffix's first block trains with the adapter.

All but ``frozen`` change weights or statistics of the small model's blocks, which a bundle then cannot share with the
small model itself; the benchmark reports those parameters' count as the extra flash. Each build gets its own copy of
the small model, so ideas never leak into each other. Lives in ``bench/`` because only the benchmark uses it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.tuning.loop import (
    SCHEDULES,
    TuneConfig,
    TuneResult,
    cached_accuracy,
    fixed_split,
    run_epoch,
    tune_adapter,
)
from restnet_compile.stitching.tuning.recipes import RECIPES, Recipe, RecipeData, match_from_ls

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


def _tune_with(net: StitchedNet, data: RecipeData, cfg: TuneConfig, seed: int, extra: list[nn.Parameter]) -> TuneResult:
    """``finetune.tune_adapter`` with ``extra`` suffix parameters trained too (BatchNorm statistics stay frozen)."""
    gen = torch.Generator().manual_seed(seed)
    train, val = fixed_split(net, data.train), fixed_split(net, data.val)
    params = list(net.adapter.parameters()) + extra
    for p in params:
        p.requires_grad_(True)
    net.eval()

    def run(feats: torch.Tensor) -> torch.Tensor:
        return net.head(net.suffix(net.adapter.trainable(feats)))

    def val_accuracy() -> float:
        with torch.no_grad():
            return cached_accuracy(net, val, fixed=True)

    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    sched = SCHEDULES.get(cfg.schedule)(opt, cfg.epochs * -(-len(train.labels) // cfg.batch_size))
    best = init = val_accuracy()
    state, best_epoch = copy.deepcopy(net.state_dict()), 0
    for epoch in range(1, cfg.epochs + 1):
        run_epoch(run, train, opt, sched, cfg, gen)
        acc = val_accuracy()
        if acc > best:
            best, state, best_epoch = acc, copy.deepcopy(net.state_dict()), epoch
    net.load_state_dict(state)
    for p in params:
        p.requires_grad_(False)
    return TuneResult(round(init, 4), round(best, 4), cfg.epochs, best_epoch)


def _recipe(idea: str) -> Callable[[StitchedNet, RecipeData, TuneConfig, int], TuneResult]:
    """``ls+feature-match+distill`` with the suffix idea applied at its step."""

    def run(net: StitchedNet, data: RecipeData, cfg: TuneConfig, seed: int) -> TuneResult:
        init, matched = match_from_ls(net, data, cfg, seed)
        if idea == "recalibrate-before":
            recalibrate(net, fixed_split(net, data.train).feats)
        if idea in ("norm", "first-block"):
            res = _tune_with(net, data, cfg, seed, trained_params(net, idea))
        else:
            res = tune_adapter(net, data.train, data.val, cfg, seed)
        if idea == "recalibrate-after":  # reported as measured after the re-estimation, even when it lost
            recalibrate(net, fixed_split(net, data.train).feats)
            return TuneResult(init, round(cached_accuracy(net, data.val), 4), matched + res.epochs_run, 0)
        return TuneResult(init, max(res.val_accuracy, res.val_accuracy_init), matched + res.epochs_run, res.best_epoch)

    return run


def recipe_name(idea: str) -> str:
    """The bench-local recipe that applies ``idea`` (registered on first use)."""
    if idea not in SUFFIX_IDEAS:
        raise SystemExit(f"suffix: unknown idea {idea!r}; valid: {', '.join(SUFFIX_IDEAS)}")
    name = f"bench-suffix-{idea}"
    if idea != "frozen" and name not in RECIPES.names():
        RECIPES.register(name)(Recipe(_recipe(idea), needs_targets=True))
    return name if idea != "frozen" else "ls+feature-match+distill"
