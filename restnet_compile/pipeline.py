"""The build's stages before export: models and data in, stitched variants with costs and decisions out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restnet_compile.analysis import cka_matrix
from restnet_compile.buildconfig import BuildConfig
from restnet_compile.config import Profile, Target
from restnet_compile.cost import CostReport, estimate_cost
from restnet_compile.data import Splits, load_dataset, make_splits
from restnet_compile.select import Candidate as SelectCandidate
from restnet_compile.select import Decision, select
from restnet_compile.stitch import PlanRule, StitchedVariant, TuneConfig, build_stitched, plan_candidates
from restnet_compile.stitch.finetune import CachedSplit
from restnet_compile.zoo import BlockSequence, create_model
from restnet_compile.zoo.registry import shipped_weights

Progress = Callable[[str], None]


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
    rule: PlanRule
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
            "description": f"large[0..{c.point.front_block}] -> {c.adapter} -> small[{c.point.back_block + 1}..]",
        },
        val_accuracy=sv.tune.val_accuracy,
        test_accuracy=accuracy(sv.net, splits.test.images, splits.test.labels),
        cost=estimate_cost(sv.net, shape, profile, target.dtype),
        tune=dict(sv.tune.__dict__),
    )


def analyze_and_stitch(config: BuildConfig, profile: Profile, target: Target, progress: Progress) -> Analysis:
    """Load models and data, compute CKA, plan, build and tune candidates, cost them and decide what ships."""
    set_determinism(config.seed)
    large = create_model(config.large, Path(config.large_weights) if config.large_weights else None)
    small = create_model(config.small, Path(config.small_weights) if config.small_weights else None)
    splits = make_splits(load_dataset(config.dataset), seed=config.seed)
    progress(f"CKA: {len(large.blocks)} x {len(small.blocks)} blocks on {len(splits.calib)} calibration images")
    bs = config.cka_batch_size
    cka = cka_matrix(large, small, (splits.calib.images[i : i + bs] for i in range(0, len(splits.calib), bs)))
    rule = PlanRule(**config.plan.model_dump())
    candidates = plan_candidates(cka, large.feature_specs(), small.feature_specs(), rule)
    progress(f"stitching {len(candidates)} candidates: {', '.join(c.point.variant_id for c in candidates)}")
    variants = [_anchor("large", large, splits, profile, target), _anchor("small", small, splits, profile, target)]
    cache: dict[int, tuple[CachedSplit, CachedSplit]] = {}
    tune = TuneConfig(**config.tune.model_dump())
    for c in candidates:
        sv = build_stitched(large, small, c, splits, tune, config.seed, cache)
        variants.append(_stitched(sv, splits, profile, target, large.input_shape))
        progress(
            f"  {c.point.variant_id}: LS R^2 {sv.ls_r2:.3f}, val {sv.tune.val_accuracy_init:.3f} -> "
            f"{sv.tune.val_accuracy:.3f} in {sv.tune_seconds:.1f}s"
        )
    decide(variants, profile, pareto=config.selection == "pareto")
    return Analysis(config, profile, target, large, small, splits, cka, rule, variants)


def decide(variants: list[Variant], profile: Profile, pareto: bool = True) -> None:
    """Attach a feasibility / Pareto decision to every variant (raises when nothing fits)."""
    cands = [
        SelectCandidate(v.id, v.cost.latency_ms, v.cost.ram_bytes, v.cost.flash_bytes, v.val_accuracy, v.cost.flops)
        for v in variants
    ]
    for v, d in zip(variants, select(cands, profile, pareto), strict=True):
        v.decision = d
