"""Stage 2: the large x small CKA matrix over the calibration split (cached)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np

from restnet_compile._util.progress import Reporter
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Images, Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache_store import Entry, npy_bytes, npy_load
from restnet_compile.pipeline.stage_store import Saved, StageCache, StageKey
from restnet_compile.similarity import cka_matrix

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
    config: BuildConfig, large: BlockSequence, small: BlockSequence, splits: Splits, store: StageCache
) -> dict[str, Any]:
    """What the CKA matrix depends on: its part of the config, the two models and the data."""
    return {"config": KEY.config_part(config), "models": store.models(large, small, config), "data": store.data(splits)}


def save_cka(matrix: np.ndarray[Any, Any]) -> Saved:
    """The matrix as one ``.npy`` file of a store entry."""
    return None, {"cka.npy": npy_bytes(matrix)}


def load_cka(entry: Entry) -> np.ndarray[Any, Any]:
    """The matrix :func:`save_cka` stored."""
    return npy_load(entry.read("cka.npy"))


def cka_stage(
    config: BuildConfig,
    large: BlockSequence,
    small: BlockSequence,
    splits: Splits,
    store: StageCache,
    progress: Reporter,
) -> np.ndarray[Any, Any]:
    """The CKA matrix of the build, from the store when its inputs were seen before."""
    progress(f"CKA: {len(large.blocks)} x {len(small.blocks)} blocks on {len(splits.calib)} calibration images")
    inputs = cka_inputs(config, large, small, splits, store)
    compute = partial(compute_cka, large, small, splits.calib.images, config.cka_batch_size, progress, config.device)
    cka, reused = store.run("cka", KEY, inputs, compute, save_cka, load_cka)
    if reused:
        progress("  CKA: reused (cache)")
    return cka
