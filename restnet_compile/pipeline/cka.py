"""Stage 2: the large x small CKA matrix over the calibration split (cached); a family's, one per pair."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch

from restnet_compile._util.progress import Reporter
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Images, Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache.disk import Entry, npy_bytes, npy_load
from restnet_compile.pipeline.cache.stages import Saved, StageCache, StageKey
from restnet_compile.pipeline.family import Family
from restnet_compile.similarity import cka_matrix
from restnet_compile.similarity.cka import cka_matrices

KEY = StageKey("cka", 1, ("plan", "tune", "selection", "selection_noise", "strict_parity", "profile", "target"))


def compute_cka(
    large: BlockSequence,
    small: BlockSequence,
    images: Images,
    batch_size: int,
    progress: Reporter | None = None,
    device: str = "cpu",
) -> np.ndarray[Any, Any]:
    """The large x small CKA matrix over ``images`` in one streaming pass of minibatches (on ``device``)."""
    starts = range(0, len(images), batch_size)
    if progress is not None:
        progress.stage("CKA", len(starts))

    def batches() -> Iterator[np.ndarray[Any, Any]]:
        for i in starts:
            yield images[i : i + batch_size]
            if progress is not None:
                progress.advance("CKA")

    return cka_matrix(large, small, batches(), device)


def cka_inputs(
    config: BuildConfig, large: BlockSequence, small: BlockSequence, splits: Splits, cache: StageCache
) -> dict[str, Any]:
    """What the CKA matrix depends on: its part of the config, the two models and the data."""
    return {"config": KEY.config_part(config), "models": cache.models(large, small, config), "data": cache.data(splits)}


def save_cka(matrix: np.ndarray[Any, Any]) -> Saved:
    """The matrix as one ``.npy`` file of a cache entry."""
    return None, {"cka.npy": npy_bytes(matrix)}


def load_cka(entry: Entry) -> np.ndarray[Any, Any]:
    """The matrix :func:`save_cka` stored."""
    return npy_load(entry.read("cka.npy"))


def cka_stage(
    config: BuildConfig,
    large: BlockSequence,
    small: BlockSequence,
    splits: Splits,
    cache: StageCache,
    progress: Reporter,
) -> np.ndarray[Any, Any]:
    """The CKA matrix of the build, from the cache when its inputs were seen before."""
    progress(f"CKA: {len(large.blocks)} x {len(small.blocks)} blocks on {len(splits.calib)} calibration images")
    inputs = cka_inputs(config, large, small, splits, cache)
    compute = partial(compute_cka, large, small, splits.calib.images, config.cka_batch_size, progress, config.device)
    cka, reused = cache.run("cka", KEY, inputs, compute, save_cka, load_cka)
    if reused:
        progress("  CKA: reused (cache)")
    return cka


def family_cka(
    config: BuildConfig, family: Family, splits: Splits, cache: StageCache, progress: Reporter
) -> dict[str, np.ndarray[Any, Any]]:
    """Pair name (``L-M``) -> the CKA matrix of that pair (rows: its bigger anchor's blocks), from the cache where
    its inputs were seen before (keyed as the pair's own build keys it). The pairs not stored are computed together in
    one streaming pass, so each anchor runs once over the calibration split, however many pairs it is in."""
    if family.is_pair:
        pair = family.pairs[0]
        return {pair.name: cka_stage(config, pair.big.model, pair.little.model, splits, cache, progress)}
    models = list(family.models)
    index = {a.tag: k for k, a in enumerate(family.anchors)}
    blocks = ", ".join(f"{a.tag} {len(a.model.blocks)}" for a in family.anchors)
    progress(f"CKA: {len(family.pairs)} pairs of {blocks} blocks on {len(splits.calib)} calibration images")
    found = {}
    out: dict[str, np.ndarray[Any, Any]] = {}
    for pair in family.pairs:
        inputs = cka_inputs(pair.config(config), pair.big.model, pair.little.model, splits, cache)
        found[pair.name] = cache.lookup(f"cka {pair.name}", KEY, inputs, load_cka)
        if (hit := found[pair.name].hit) is not None:
            out[pair.name] = hit[0]
            progress(f"  CKA {pair.name}: reused (cache)")
    todo = [p for p in family.pairs if p.name not in out]
    if todo:
        images = splits.calib.images
        starts = range(0, len(images), config.cka_batch_size)
        progress.stage("CKA", len(starts))

        def batches() -> Iterator[np.ndarray[Any, Any]]:
            for i in starts:
                yield images[i : i + config.cka_batch_size]
                progress.advance("CKA")

        pairs = [(index[p.big.tag], index[p.little.tag]) for p in todo]
        for pair, matrix in zip(todo, cka_matrices(models, pairs, batches(), config.device), strict=True):
            out[pair.name] = matrix
            cache.keep(f"cka {pair.name}", found[pair.name], matrix, save_cka, torch.get_rng_state())
    return {p.name: out[p.name] for p in family.pairs}
