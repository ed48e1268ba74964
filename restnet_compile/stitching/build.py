"""Build one stitched variant: adapter, least-squares init on calibration features, adapter-only tuning."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from restnet_compile._util.torch_state import on_device
from restnet_compile.config.build import TuneSettings
from restnet_compile.data import Splits
from restnet_compile.models.batching import MAX_ROWS, forward_rows
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.stitching.adapters import ADAPTERS, choose_adapter
from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.plan import Candidate
from restnet_compile.stitching.tuning.loop import CachedSplit, PrefixRows, TuneResult, cache_cuts, cached_accuracy
from restnet_compile.stitching.tuning.qat import qat_adapter
from restnet_compile.stitching.tuning.recipes import RECIPES, RecipeData
from restnet_compile.stitching.tuning.store import ComputedRows, Rows, RowsWriter, StoreKind, received_folder


@dataclass
class StitchedVariant:
    """A built, tuned stitched network and how it got there."""

    net: StitchedNet
    candidate: Candidate
    ls_r2: float
    tune: TuneResult
    tune_seconds: float


@dataclass(frozen=True)
class FeatureStore:
    """Where tuning keeps prefix features and feature-matching targets: a store kind and, for files, a folder."""

    kind: StoreKind = "ram"
    folder: Path | None = None

    def __reduce__(self) -> tuple:  # in another process, files go in that process's own folder
        return (_store_here, (self.kind,))


def _store_here(kind: StoreKind) -> FeatureStore:
    return FeatureStore(kind, received_folder() if kind in ("mmap", "mmap-fp16") else None)


def prefix_cache(
    front: BlockSequence,
    teacher: BlockSequence,
    candidates: list[Candidate],
    splits: Splits,
    device: str | torch.device = "cpu",
    store: FeatureStore = FeatureStore(),
) -> dict[int, tuple[CachedSplit, CachedSplit]]:
    """Train / val prefix features of every candidate's cut and the teacher's logits, one pass per split.

    The passes run on ``device``; the features go to ``store`` on the CPU (a tuning job moves its own cut's to its
    device).
    """
    cuts = {c.point.front_block for c in candidates}
    kind, folder = store.kind, store.folder
    with on_device((front, teacher), device):
        train = cache_cuts(front, teacher, cuts, splits.train, device=device, store=kind, folder=folder)
        val = cache_cuts(front, teacher, cuts, splits.val, device=device, store=kind, folder=folder)
    return {i: (train[i], val[i]) for i in cuts}


@torch.no_grad()
def match_targets(back: BlockSequence, stop: int, images: object, store: FeatureStore) -> Rows:
    """The back model's activations after block ``stop - 1`` on ``images`` (the feature-matching targets)."""
    n = len(images)  # type: ignore[arg-type]
    batch = forward_rows(back)
    device = next(back.parameters(), torch.empty(0)).device
    if store.kind == "recompute":
        shape = (n, *back.feature_specs()[stop - 1].shape)
        return ComputedRows(PrefixRows(back, stop, images), shape, device)
    writer = RowsWriter(store.kind, n, store.folder)
    for k in range(0, n, batch):
        x = torch.from_numpy(np.ascontiguousarray(images[k : k + batch])).to(device)  # type: ignore[index]
        writer.append(back.run_blocks(x, 0, stop))
    return writer.finish().to(device)


@torch.no_grad()
def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], images: object, device: str | torch.device, batch: int = MAX_ROWS
) -> torch.Tensor:
    """``fn`` of all ``images``, run on ``device`` in batches of ``batch`` rows (read as needed), on the CPU."""
    n = len(images)  # type: ignore[arg-type]
    parts = [
        fn(torch.from_numpy(np.ascontiguousarray(images[k : k + batch])).to(device)).cpu()  # type: ignore[index]
        for k in range(0, n, batch)
    ]
    return torch.cat(parts)


def _split_to(split: CachedSplit, device: str | torch.device) -> CachedSplit:
    return CachedSplit(split.feats.to(device), split.teacher.to(device), split.labels.to(device))


def _seed_for(seed: int, candidate: Candidate) -> int:
    return seed * 1000 + candidate.point.front_block * 31 + candidate.point.back_block


def build_stitched(
    front: BlockSequence,
    back: BlockSequence,
    candidate: Candidate,
    splits: Splits,
    tune: TuneSettings,
    seed: int,
    cache: dict[int, tuple[CachedSplit, CachedSplit]] | None = None,
    teacher: BlockSequence | None = None,
    device: str | torch.device = "cpu",
    store: FeatureStore = FeatureStore(),
) -> StitchedVariant:
    """Build and tune the variant for ``candidate``.

    Args:
        front: Model whose prefix is kept (frozen).
        back: Model whose suffix is appended (frozen).
        candidate: Stitch point and planned adapter (``tune.adapter`` replaces it where it can join the pair).
        splits: ``calib`` fits the least-squares init, ``train`` tunes, ``val`` early-stops.
        tune: Adapter, recipe and fine-tuning hyper-parameters.
        seed: Base seed; each candidate derives its own from it.
        cache: Prefix features per front cut, shared between candidates that cut at the same block.
        teacher: Distillation teacher (default ``front``; the large model when stitching small -> large).
        device: Where the least-squares fit and the tuning run; the variant comes back on the CPU.
        store: Where the feature-matching targets are kept (and features not in ``cache``).
    """
    teacher = front if teacher is None else teacher
    cache = {} if cache is None else cache
    with on_device((front, back, teacher), device):
        sv = _build(front, back, candidate, splits, tune, seed, cache, teacher, device, store)
    return dataclasses.replace(sv, net=sv.net.to("cpu")) if torch.device(device).type != "cpu" else sv


def _build(
    front: BlockSequence,
    back: BlockSequence,
    candidate: Candidate,
    splits: Splits,
    tune: TuneSettings,
    seed: int,
    cache: dict[int, tuple[CachedSplit, CachedSplit]],
    teacher: BlockSequence,
    device: str | torch.device,
    store: FeatureStore,
) -> StitchedVariant:
    start = time.perf_counter()
    torch.manual_seed(_seed_for(seed, candidate))
    specs_f, specs_b = front.feature_specs(), back.feature_specs()
    i, j = candidate.point.front_block, candidate.point.back_block
    recipe = RECIPES.get(tune.recipe)
    name = choose_adapter(tune.adapter, candidate.adapter, specs_f[i], specs_b[j])
    candidate = replace(candidate, adapter=name)
    adapter = ADAPTERS.get(name)(specs_f[i], specs_b[j])
    net = StitchedNet(front, back, candidate.point, adapter).eval()  # the adapter on the CPU for its LS fit
    calib = splits.calib.images
    rows = forward_rows(net)  # the parameter-free stage per batch: the fit sees resized features, held once
    r2 = adapter.least_squares_init(
        in_batches(lambda x: adapter.fixed(net.prefix(x)), calib, device, rows),
        in_batches(lambda x: back.run_blocks(x, 0, j + 1), calib, device, forward_rows(back)),
    )
    net.to(device)
    if i not in cache:
        cache.update(prefix_cache(front, teacher, [candidate], splits, device, store))
    train, val = (_split_to(s, device) for s in cache[i])
    targets = match_targets(back, j + 1, splits.train.images, store) if recipe.needs_targets else None
    result = recipe.run(net, RecipeData(train, val, targets), tune, _seed_for(seed, candidate))
    if tune.qat:
        qat_adapter(net, train, val, tune, _seed_for(seed, candidate))
        result = replace(result, val_accuracy=round(cached_accuracy(net, val), 4))
    return StitchedVariant(net.eval(), candidate, round(r2, 4), result, round(time.perf_counter() - start, 2))
