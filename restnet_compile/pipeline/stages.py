"""The build's stages before export: models and data in, stitched variants with costs and decisions out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restnet_compile._util.progress import Reporter, as_reporter
from restnet_compile.config.build import BuildConfig, PlanSettings
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport, estimate_cost
from restnet_compile.data import Splits, load_dataset, make_splits, split_sizes
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.models.registry import shipped_weights
from restnet_compile.pipeline.stage_store import StageCache
from restnet_compile.selection.rule import Candidate as SelectCandidate
from restnet_compile.selection.rule import Decision, select
from restnet_compile.similarity import cka_matrix
from restnet_compile.stitching import (
    Candidate,
    StitchedVariant,
    build_stitched,
    plan_candidates,
)
from restnet_compile.stitching.build import prefix_cache
from restnet_compile.stitching.tuning.loop import CachedSplit

Progress = Callable[[str], None] | Reporter


@dataclass
class Variant:
    """One variant of the build: an anchor model or a stitched network, with its measurements."""

    id: str
    kind: str
    module: nn.Module
    stitch: dict
    val_accuracy: float
    test_accuracy: float
    cost: CostReport
    tune: dict | None = None
    decision: Decision | None = None


@dataclass
class Analysis:
    """Everything the export stage needs."""

    config: BuildConfig
    profile: Profile
    target: Target
    large: BlockSequence
    small: BlockSequence
    splits: Splits
    cka: np.ndarray
    rule: PlanSettings
    variants: list[Variant]


def set_determinism(seed: int) -> None:
    """Seed torch, fix its CPU thread count and flush denormals (tiny gradients made tuning 20x slower)."""
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True, warn_only=True)


def weights_sha(name: str, weights: str | None) -> str:
    """sha256 of the checkpoint a model was loaded from."""
    path = Path(weights) if weights else shipped_weights(name)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


@torch.no_grad()
def accuracy(module: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 250) -> float:
    """Top-1 accuracy in eval mode."""
    module.eval()
    hits = sum(
        int((module(torch.from_numpy(images[i : i + batch])).argmax(1).numpy() == labels[i : i + batch]).sum())
        for i in range(0, len(labels), batch)
    )
    return round(hits / len(labels), 4)


def _anchor(kind: str, model: BlockSequence, splits: Splits, profile: Profile, target: Target) -> Variant:
    shape = model.input_shape
    return Variant(
        id=kind,
        kind=f"anchor-{kind}",
        module=model,
        stitch={"description": f"{kind} model, all {len(model.blocks)} blocks"},
        val_accuracy=accuracy(model, splits.val.images, splits.val.labels),
        test_accuracy=accuracy(model, splits.test.images, splits.test.labels),
        cost=estimate_cost(model, shape, profile, target.dtype),
    )


def _stitched(sv: StitchedVariant, splits: Splits, profile: Profile, target: Target, shape: tuple) -> Variant:
    c = sv.candidate
    front, back = ("small", "large") if c.point.front_tag == "S" else ("large", "small")
    return Variant(
        id=c.point.variant_id,
        kind="stitched",
        module=sv.net,
        stitch={
            "front_block": c.point.front_block,
            "back_block": c.point.back_block,
            "adapter": c.adapter,
            "cka": round(c.cka, 4),
            "ls_r2": sv.ls_r2,
            "front": front,
            "description": f"{front}[0..{c.point.front_block}] -> {c.adapter} -> {back}[{c.point.back_block + 1}..]",
        },
        val_accuracy=sv.tune.val_accuracy,
        test_accuracy=accuracy(sv.net, splits.test.images, splits.test.labels),
        cost=estimate_cost(sv.net, shape, profile, target.dtype),
        tune=dict(sv.tune.__dict__),
    )


def load_models(config: BuildConfig) -> tuple[BlockSequence, BlockSequence]:
    """The large and small model of ``config``, frozen, checked to take the same input and give the same classes.

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model, or models that disagree on input or classes.
    """
    opts = {"input_shape": config.input_shape, "num_classes": config.num_classes}
    large = create_model(config.large, Path(config.large_weights) if config.large_weights else None, **opts)
    small = create_model(config.small, Path(config.small_weights) if config.small_weights else None, **opts)
    if large.input_shape != small.input_shape:
        shapes = f"{'x'.join(map(str, large.input_shape))} vs {'x'.join(map(str, small.input_shape))}"
        raise BadInputError(f"models {large.model_name} and {small.model_name} take different inputs: {shapes}")
    if large.num_classes() != small.num_classes():
        raise BadInputError(
            f"models {large.model_name} and {small.model_name} have different classes: "
            f"{large.num_classes()} vs {small.num_classes()}"
        )
    return large, small


def load_splits(config: BuildConfig, model: BlockSequence) -> Splits:
    """The dataset of ``config`` at ``model``'s input shape, split deterministically.

    Raises:
        BadInputError: unreadable data, other image shape, or labels the model has no class for.
    """
    ds = load_dataset(config.dataset, model.input_shape)
    if len(ds) and int(ds.labels.max()) >= model.num_classes():
        raise BadInputError(
            f"dataset {config.dataset}: label {int(ds.labels.max())} but model {model.model_name} has "
            f"{model.num_classes()} classes"
        )
    calib, val, test = split_sizes(len(ds) - ds.train_only)
    return make_splits(ds, seed=config.seed, calib=calib, val=val, test=test)


def compute_cka(
    large: BlockSequence,
    small: BlockSequence,
    images: np.ndarray,
    batch_size: int,
    progress: Reporter | None = None,
) -> np.ndarray:
    """The large x small CKA matrix over ``images`` in one streaming pass of minibatches."""
    starts = range(0, len(images), batch_size)
    if progress is not None:
        progress.stage("CKA", len(starts))

    def batches() -> Iterator[np.ndarray]:
        for i in starts:
            yield images[i : i + batch_size]
            if progress is not None:
                progress.advance("CKA")

    return cka_matrix(large, small, batches())


def plan(
    config: BuildConfig, cka: np.ndarray, large: BlockSequence, small: BlockSequence
) -> tuple[PlanSettings, list[Candidate], BlockSequence, BlockSequence]:
    """The rule, the candidates and the (front, back) models in the configured stitch order."""
    rule = config.plan
    front, back, matrix = (small, large, cka.T) if rule.order == "small-large" else (large, small, cka)
    return rule, plan_candidates(matrix, front.feature_specs(), back.feature_specs(), rule), front, back


def analyze_and_stitch(
    config: BuildConfig, profile: Profile, target: Target, progress: Progress, stages: StageCache | None = None
) -> Analysis:
    """Load models and data, compute CKA, plan, build and tune candidates, cost them and decide what ships.

    ``stages`` serves the CKA matrix and tuned adapters from the build cache where it can (default: no cache).
    """
    progress = as_reporter(progress)
    stages = stages or StageCache(None, progress)
    set_determinism(config.seed)
    large, small = load_models(config)
    splits = load_splits(config, large)
    progress(f"CKA: {len(large.blocks)} x {len(small.blocks)} blocks on {len(splits.calib)} calibration images")
    run_cka = partial(compute_cka, large, small, splits.calib.images, config.cka_batch_size, progress)
    cka, reused = stages.cka(config, large, small, splits, run_cka)
    if reused:
        progress("  CKA: reused (cache)")
    rule, candidates, front, back = plan(config, cka, large, small)
    progress(f"stitching {len(candidates)} candidates: {', '.join(c.point.variant_id for c in candidates)}")
    variants = [_anchor("large", large, splits, profile, target), _anchor("small", small, splits, profile, target)]
    cache: dict[int, tuple[CachedSplit, CachedSplit]] = prefix_cache(front, large, candidates, splits)
    progress.stage("tuning adapters", len(candidates))
    for c in candidates:
        run = partial(build_stitched, front, back, c, splits, config.tune, config.seed, cache, teacher=large)
        sv, reused = stages.tuned(config, c, (large, small), front, back, splits, run)
        variants.append(_stitched(sv, splits, profile, target, large.input_shape))
        progress(
            f"  {c.point.variant_id}: LS R^2 {sv.ls_r2:.3f}, val {sv.tune.val_accuracy_init:.3f} -> "
            f"{sv.tune.val_accuracy:.3f} " + ("reused (cache)" if reused else f"in {sv.tune_seconds:.1f}s")
        )
        progress.advance("tuning adapters")
    decide(variants, profile, pareto=config.selection == "pareto")
    return Analysis(config, profile, target, large, small, splits, cka, rule, variants)


def decide(variants: list[Variant], profile: Profile, pareto: bool = True) -> None:
    """Attach a feasibility / Pareto decision to every variant (raises when nothing fits)."""
    cands = [
        SelectCandidate(
            v.id,
            v.cost.latency_ms,
            v.cost.ram_bytes,
            v.cost.flash_bytes,
            v.val_accuracy,
            v.cost.flops,
            dtype=v.cost.dtype,
            ops=v.cost.ops,
            arena_bytes=v.cost.arena_bytes,
        )
        for v in variants
    ]
    for v, d in zip(variants, select(cands, profile, pareto), strict=True):
        v.decision = d
