"""Stage 4: every candidate built, least-squares initialised and its adapter tuned alone (cached per candidate).

Each candidate not in the cache is one job of the build's executor (:mod:`.executor`): in this process, or a Ray task
that receives the models, the data and its cut's prefix features through the object store and returns only the
adapter. Each candidate seeds its own tuning, and torch's random state after the stage is the one the last
candidate left, wherever it was computed, so every executor gives the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from restnet_compile._util.progress import Reporter
from restnet_compile.config.build import BuildConfig
from restnet_compile.cost.flops import count_flops
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.build_memory import (
    batch_bytes,
    choose_feature_store,
    feature_bytes,
    spill_folder,
    spill_parent,
)
from restnet_compile.pipeline.cache.disk import Entry
from restnet_compile.pipeline.cache.fingerprint import module_digest
from restnet_compile.pipeline.cache.stages import (
    Lookup,
    Saved,
    StageCache,
    StageKey,
    read_meta,
    read_state,
    state_files,
)
from restnet_compile.pipeline.jobs import Done, Executor, Job, LocalExecutor
from restnet_compile.pipeline.state import Plan
from restnet_compile.stitching import (
    ADAPTERS,
    Adapter,
    Candidate,
    StitchedNet,
    StitchedVariant,
    build_stitched,
)
from restnet_compile.stitching.build import FeatureStore, prefix_cache
from restnet_compile.stitching.tuning.loop import CachedSplit, TuneResult

KEY = StageKey("tune", 1, ("selection", "selection_noise", "strict_parity", "profile", "target"))


@dataclass(frozen=True)
class TunedMeta:
    """What the cache keeps beside a tuned adapter's tensors.

    Attributes:
        candidate: The stitch that was tuned.
        ls_r2: R^2 of the adapter's least-squares initialisation.
        tune: What tuning did.
        tune_seconds: How long tuning took.
        state: The adapter's state-dict names, in the order of its stored files.
        net: Digest of the whole stitched network, checked when it is rebuilt.
    """

    candidate: Candidate
    ls_r2: float
    tune: TuneResult
    tune_seconds: float
    state: tuple[str, ...]
    net: str


def _save(sv: StitchedVariant) -> Saved:
    state = sv.net.adapter.state_dict()
    meta = TunedMeta(sv.candidate, sv.ls_r2, sv.tune, sv.tune_seconds, tuple(state), module_digest(sv.net))
    return meta, state_files(state)


def _load(front: BlockSequence, back: BlockSequence, e: Entry) -> StitchedVariant:
    m = read_meta(e, TunedMeta)
    c = m.candidate
    i, j = c.point.front_block, c.point.back_block
    adapter = ADAPTERS.get(c.adapter)(front.feature_specs()[i], back.feature_specs()[j])
    adapter.load_state_dict(read_state(e, list(m.state)), strict=True)
    for p in adapter.parameters():
        p.requires_grad_(False)
    net = StitchedNet(front, back, c.point, adapter).eval()
    if module_digest(net) != m.net:  # e.g. a recipe that changed more than the adapter
        raise ValueError("the rebuilt network differs from the tuned one")
    return StitchedVariant(net, c, m.ls_r2, m.tune, m.tune_seconds)


@dataclass(frozen=True)
class Tuned:
    """What tuning one candidate gives, without the donor models (what a worker sends back)."""

    adapter: Adapter
    candidate: Candidate
    ls_r2: float
    tune: TuneResult
    tune_seconds: float

    def attach(self, front: BlockSequence, back: BlockSequence) -> StitchedVariant:
        """The stitched variant: this adapter between the caller's own ``front`` and ``back`` models."""
        net = StitchedNet(front, back, self.candidate.point, self.adapter).eval()
        return StitchedVariant(net, self.candidate, self.ls_r2, self.tune, self.tune_seconds)


def tune_job(
    front: BlockSequence,
    back: BlockSequence,
    candidate: Candidate,
    splits: Splits,
    config: BuildConfig,
    features: dict[int, tuple[CachedSplit, CachedSplit]],
    teacher: BlockSequence,
    device: str,
    store: FeatureStore,
    *,
    progress: Reporter,
) -> Tuned:
    """Build and tune one candidate (a job of the executor)."""
    sv = build_stitched(
        front, back, candidate, splits, config.tune, config.seed, features, teacher=teacher, device=device, store=store
    )
    return Tuned(sv.net.adapter, sv.candidate, sv.ls_r2, sv.tune, sv.tune_seconds)


def _report(progress: Reporter, sv: StitchedVariant, reused: bool) -> None:
    progress(
        f"  {sv.candidate.point.variant_id}: LS R^2 {sv.ls_r2:.3f}, val {sv.tune.val_accuracy_init:.3f} -> "
        f"{sv.tune.val_accuracy:.3f} " + ("reused (cache)" if reused else f"in {sv.tune_seconds:.1f}s")
    )
    progress.advance("tuning adapters")


def tuning_cost(front: BlockSequence, back: BlockSequence, c: Candidate) -> float:
    """Multiply-adds of what tuning ``c`` runs on every image: its adapter, the suffix and the head (the prefix
    features are computed once, before), an estimate of its run time relative to the other candidates'."""
    i, j = c.point.front_block, c.point.back_block
    spec = front.feature_specs()[i]
    with torch.random.fork_rng(devices=[]):  # an adapter initialises from the global stream: leave it where it was
        adapter = ADAPTERS.get(c.adapter)(spec, back.feature_specs()[j])
    tail = StitchedNet(front, back, c.point, adapter)
    return float(count_flops(nn.Sequential(tail.adapter, tail.suffix, tail.head), spec.shape).total)


def _jobs(
    config: BuildConfig,
    plan: Plan,
    large: BlockSequence,
    splits: Splits,
    todo: list[Candidate],
    executor: Executor,
    store: FeatureStore,
) -> list[Job]:
    """One job per candidate of ``todo``; models, data and each cut's prefix features shared once."""
    features = prefix_cache(plan.front, large, todo, splits, config.device, store)
    front, back, data, settings = (executor.share(x) for x in (plan.front, plan.back, splits, config))
    teacher = front if large is plan.front else executor.share(large)
    cuts = {i: executor.share({i: f}) for i, f in features.items()}
    gpus = 1.0 if config.device == "cuda" and executor.remote else 0.0
    return [
        Job(
            tune_job,
            (front, back, c, data, settings, cuts[c.point.front_block], teacher, config.device, store),
            f"tune {c.point.variant_id}",
            num_cpus=config.threads,
            num_gpus=gpus,
            cost=tuning_cost(plan.front, plan.back, c) if executor.remote else 0.0,  # longest first on a cluster
        )
        for c in todo
    ]


def tune_stage(
    config: BuildConfig,
    plan: Plan,
    large: BlockSequence,
    small: BlockSequence,
    splits: Splits,
    cache: StageCache,
    progress: Reporter,
    executor: Executor | None = None,
    on_tuned: Callable[[StitchedVariant], None] | None = None,
) -> list[StitchedVariant]:
    """Every candidate of ``plan`` built and tuned (the large model is the distillation teacher), in plan order.

    ``config.device`` (``cpu`` or ``cuda``, resolved) is where the prefix features and the tuning are computed.
    ``on_tuned`` is called with each variant tuned here (not with one the cache gave), as soon as it is.
    """
    executor = executor or LocalExecutor()
    need = feature_bytes(plan.front, plan.back, plan.candidates, splits, config.tune.recipe)
    choice = choose_feature_store(config, need, batch_bytes(plan.front), spill_parent(cache.root))
    progress.stage("tuning adapters", len(plan.candidates))
    found: dict[Candidate, Lookup[StitchedVariant]] = {}
    results: dict[Candidate, tuple[StitchedVariant, torch.Tensor]] = {}
    for c in plan.candidates:
        inputs = {
            "config": KEY.config_part(config),
            "candidate": dataclasses.asdict(c),
            "models": cache.models(large, small, config),
            "data": cache.data(splits),
            "features": "exact" if choice.kind in ("ram", "mmap") else choice.kind,  # ram and mmap: same values
        }
        found[c] = cache.lookup(f"tune {c.point.variant_id}", KEY, inputs, lambda e: _load(plan.front, plan.back, e))
        if (hit := found[c].hit) is not None:
            results[c] = hit
            _report(progress, hit[0], True)
    todo = [c for c in plan.candidates if c not in results]

    def finished(k: int, done: Done[Tuned]) -> None:
        sv = done.get().attach(plan.front, plan.back)
        results[todo[k]] = sv, done.rng
        cache.keep(f"tune {todo[k].point.variant_id}", found[todo[k]], sv, _save, done.rng)
        _report(progress, sv, False)
        if on_tuned is not None:
            on_tuned(sv)

    if todo:
        progress(choice.reason)
        with spill_folder(cache.root) as folder:
            jobs = _jobs(config, plan, large, splits, todo, executor, FeatureStore(choice.kind, folder))
            executor.run(jobs, progress, finished)
    if plan.candidates:  # the random state the last candidate left, as if all had run here in plan order
        torch.set_rng_state(results[plan.candidates[-1]][1])
    return [results[c][0] for c in plan.candidates]
