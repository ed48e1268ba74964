"""Adapter tuning recipes, registered by name; both donor models stay frozen in every one of them.

* ``ls-only``: the closed-form least-squares initialisation, no gradient steps.
* ``distill``: LS init, then adapter-only tuning through the frozen suffix with CE + distillation from the large
  model (``loop.tune_adapter``), ``epochs`` passes.
* ``ls+feature-match+distill``: LS init, then ``match_epochs`` passes of feature matching (MSE of the adapter's output
  to the small model's own activations at the stitch point; no pass through the suffix, so each step costs only the
  adapter), then ``epochs`` passes of CE + distillation. Feature matching lets a non-linear adapter use its extra
  capacity before the task loss; the 1x1 adapter's LS init is already the feature-matching optimum on the
  calibration split.

Every recipe keeps the best adapter on the validation split, the LS start included.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from restnet_compile._util.registry import Registry
from restnet_compile.config.build import TuneSettings
from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.tuning.loop import CachedSplit, TuneResult, cached_accuracy, feature_rows, tune_adapter
from restnet_compile.stitching.tuning.store import Rows, channel_variance, rows_of


@dataclass(frozen=True)
class RecipeData:
    """Cached inputs of a recipe: prefix features of train / val and, for feature matching, the back model's own
    activations at the stitch point on the train split (``None`` when the recipe does not need them)."""

    train: CachedSplit
    val: CachedSplit
    targets: Rows | None = None


@dataclass(frozen=True)
class Recipe:
    """A tuning recipe: its function and whether it needs the back model's activations (``RecipeData.targets``)."""

    run: Callable[[StitchedNet, RecipeData, TuneSettings, int], TuneResult]
    needs_targets: bool = False


RECIPES: Registry[Recipe] = Registry("recipe")


def _ls_only(net: StitchedNet, data: RecipeData, cfg: TuneSettings, seed: int) -> TuneResult:
    acc = round(cached_accuracy(net, data.val), 4)
    return TuneResult(acc, acc, 0, 0)


def _distill(net: StitchedNet, data: RecipeData, cfg: TuneSettings, seed: int) -> TuneResult:
    return tune_adapter(net, data.train, data.val, cfg, seed)


def feature_match(
    net: StitchedNet, feats: Rows | torch.Tensor, targets: Rows | torch.Tensor, cfg: TuneSettings, seed: int
) -> int:
    """``cfg.match_epochs`` passes of MSE between ``net.adapter(feats)`` and ``targets``; returns the passes run.

    The loss is normalised by the targets' variance per channel, so every channel of the stitch point counts alike.
    """
    adapter, feats, targets = net.adapter, rows_of(feats), rows_of(targets)
    scale = channel_variance(targets).clamp_min(1e-6)
    adapter.requires_grad_(True)
    opt = torch.optim.Adam(adapter.parameters(), lr=cfg.match_lr, foreach=True)
    gen = torch.Generator().manual_seed(seed + 7)
    net.eval()
    if cfg.match_epochs:
        with torch.no_grad():  # the parameter-free resize once, not at every step
            feats = feats.map(adapter.fixed, feature_rows(net))
    for _ in range(cfg.match_epochs):
        order = torch.randperm(len(feats), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size].to(feats.device)
            loss = (((adapter.trainable(feats[idx]) - targets[idx]) ** 2) / scale).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    adapter.requires_grad_(False)
    return cfg.match_epochs


def match_from_ls(net: StitchedNet, data: RecipeData, cfg: TuneSettings, seed: int) -> tuple[float, int]:
    """Feature matching from the LS start, kept only if it does not lower validation accuracy.

    Returns the LS start's validation accuracy and the matching passes run.
    """
    if data.targets is None:
        raise ValueError("feature matching needs the back model's activations")
    init_acc = round(cached_accuracy(net, data.val), 4)
    ls_state = copy.deepcopy(net.adapter.state_dict())
    matched = feature_match(net, data.train.feats, data.targets, cfg, seed)
    if cached_accuracy(net, data.val) < init_acc:  # matching may trade task accuracy for feature error: keep LS
        net.adapter.load_state_dict(ls_state)
    return init_acc, matched


def _match_then_distill(net: StitchedNet, data: RecipeData, cfg: TuneSettings, seed: int) -> TuneResult:
    init_acc, matched = match_from_ls(net, data, cfg, seed)
    res = tune_adapter(net, data.train, data.val, cfg, seed)
    return TuneResult(init_acc, max(res.val_accuracy, res.val_accuracy_init), matched + res.epochs_run, res.best_epoch)


RECIPES.register("ls-only")(Recipe(_ls_only))
RECIPES.register("distill")(Recipe(_distill))
RECIPES.register("ls+feature-match+distill")(Recipe(_match_then_distill, needs_targets=True))
