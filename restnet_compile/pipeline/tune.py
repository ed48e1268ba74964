"""Stage 4: every candidate built, least-squares initialised and its adapter tuned alone (cached per candidate)."""

from __future__ import annotations

import dataclasses
from functools import partial

from restnet_compile._util.progress import Reporter
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache_store import Entry
from restnet_compile.pipeline.candidates import Plan
from restnet_compile.pipeline.fingerprint import module_digest
from restnet_compile.pipeline.stage_store import StageCache, StageKey, read_state, state_files
from restnet_compile.stitching import (
    ADAPTERS,
    Candidate,
    StitchedNet,
    StitchedVariant,
    StitchPoint,
    build_stitched,
)
from restnet_compile.stitching.build import prefix_cache
from restnet_compile.stitching.tuning.loop import TuneResult

KEY = StageKey("tune", 1, ("selection", "selection_noise", "profile", "target"))


def _save(sv: StitchedVariant) -> tuple[dict, dict[str, bytes]]:
    state = sv.net.adapter.state_dict()
    meta = {
        "candidate": dataclasses.asdict(sv.candidate),
        "ls_r2": sv.ls_r2,
        "tune": dataclasses.asdict(sv.tune),
        "tune_seconds": sv.tune_seconds,
        "state": list(state),
        "net": module_digest(sv.net),
    }
    return meta, state_files(state)


def _load(front: BlockSequence, back: BlockSequence, e: Entry) -> StitchedVariant:
    m = e.meta
    c = Candidate(**{**m["candidate"], "point": StitchPoint(**m["candidate"]["point"])})
    i, j = c.point.front_block, c.point.back_block
    adapter = ADAPTERS.get(c.adapter)(front.feature_specs()[i], back.feature_specs()[j])
    adapter.load_state_dict(read_state(e, m["state"]), strict=True)
    for p in adapter.parameters():
        p.requires_grad_(False)
    net = StitchedNet(front, back, c.point, adapter).eval()
    if module_digest(net) != m["net"]:  # e.g. a recipe that changed more than the adapter
        raise ValueError("the rebuilt network differs from the tuned one")
    return StitchedVariant(net, c, m["ls_r2"], TuneResult(**m["tune"]), m["tune_seconds"])


def tune_stage(
    config: BuildConfig,
    plan: Plan,
    large: BlockSequence,
    small: BlockSequence,
    splits: Splits,
    store: StageCache,
    progress: Reporter,
) -> list[StitchedVariant]:
    """Every candidate of ``plan`` built and tuned (the large model is the distillation teacher), in plan order."""
    features = prefix_cache(plan.front, large, plan.candidates, splits)
    progress.stage("tuning adapters", len(plan.candidates))
    out = []
    for c in plan.candidates:
        inputs = {
            "config": KEY.config_part(config),
            "candidate": dataclasses.asdict(c),
            "models": store.models(large, small, config),
            "data": store.data(splits),
        }
        run = partial(
            build_stitched, plan.front, plan.back, c, splits, config.tune, config.seed, features, teacher=large
        )
        load = partial(_load, plan.front, plan.back)
        sv, reused = store.run(f"tune {c.point.variant_id}", KEY, inputs, run, _save, load)
        out.append(sv)
        progress(
            f"  {c.point.variant_id}: LS R^2 {sv.ls_r2:.3f}, val {sv.tune.val_accuracy_init:.3f} -> "
            f"{sv.tune.val_accuracy:.3f} " + ("reused (cache)" if reused else f"in {sv.tune_seconds:.1f}s")
        )
        progress.advance("tuning adapters")
    return out
