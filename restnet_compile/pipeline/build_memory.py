"""The build's memory budget (``max_memory``): is one batch affordable, and where tuning keeps prefix features.

What the budget counts is the data the build holds, not the models or the libraries: the prefix features (and
feature-matching targets) cached for tuning, and one forward batch (up to 250 images, and no more than about 256 MiB
of activations: :mod:`restnet_compile.models.batching`). ``feature_store: auto`` keeps the features in memory while
they fit the budget, else in a float32 file (the same values, so the same bundle bytes) when the disk has room for it,
else recomputes them at every step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from restnet_compile._util.tempdirs import make_owned_dir, remove_stale
from restnet_compile._util.units import format_size, parse_size
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Splits
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence
from restnet_compile.models.batching import forward_rows, image_bytes, tensor_bytes
from restnet_compile.stitching import Candidate
from restnet_compile.stitching.tuning.recipes import RECIPES
from restnet_compile.stitching.tuning.store import StoreKind

SPILL_PREFIX = "restnet-compile-features-"


def machine_memory() -> int:
    """Physical memory of this machine in bytes."""
    return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))


def memory_budget(config: BuildConfig) -> int:
    """``config.max_memory`` in bytes; a quarter of this machine's memory when it is not given."""
    return parse_size(config.max_memory, "max_memory") if config.max_memory else machine_memory() // 4


def batch_bytes(model: BlockSequence) -> int:
    """One forward batch through ``model``: :func:`forward_rows` images at their peak activations (float32)."""
    return forward_rows(model) * image_bytes(model.activation_shapes())


def check_batch_fits(config: BuildConfig, *models: BlockSequence) -> None:
    """Refuse a ``max_memory`` below what one batch of the prefix pass needs.

    Raises:
        BadInputError: the budget is too small, naming both sizes.
    """
    model = max(models, key=batch_bytes)
    need, budget = batch_bytes(model), memory_budget(config)
    if budget < need:
        raise BadInputError(
            f"max_memory {config.max_memory} is below what one batch needs ({format_size(need)}: "
            f"{forward_rows(model)} images through {model.model_name}); give at least {format_size(need)}"
        )


def feature_bytes(
    front: BlockSequence, back: BlockSequence, candidates: list[Candidate], splits: Splits, recipe: str
) -> int:
    """float32 bytes of every cut's train + val features and the teacher's logits, plus the largest candidate's
    feature-matching targets."""
    specs_f, specs_b = front.feature_specs(), back.feature_specs()
    rows = len(splits.train) + len(splits.val)
    cuts = {c.point.front_block for c in candidates}
    total = sum(rows * tensor_bytes(specs_f[i].shape) for i in cuts) + rows * tensor_bytes((front.num_classes(),))
    if RECIPES.get(recipe).needs_targets and candidates:
        total += max(len(splits.train) * tensor_bytes(specs_b[c.point.back_block].shape) for c in candidates)
    return total


@dataclass(frozen=True)
class FeatureStoreChoice:
    """The feature store tuning uses and why (a progress line)."""

    kind: StoreKind
    reason: str


def choose_feature_store(config: BuildConfig, need: int, batch: int, folder: Path) -> FeatureStoreChoice:
    """``config.feature_store``, or for ``auto`` the first of ram / mmap / recompute that fits: ram when ``need``
    bytes of features and one ``batch`` fit the budget, mmap when the disk holding ``folder`` has room."""
    size = format_size(need)
    if config.feature_store != "auto":
        return FeatureStoreChoice(config.feature_store, f"feature store: {config.feature_store} ({size} of features)")
    budget = memory_budget(config)
    if need + batch <= budget:
        return FeatureStoreChoice(
            "ram", f"feature store: ram ({size} of features, memory budget {format_size(budget)})"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if need <= free:
        reason = f"feature store: mmap in {folder} ({size} of features > memory budget {format_size(budget)})"
        return FeatureStoreChoice("mmap", reason)
    return FeatureStoreChoice(
        "recompute",
        f"feature store: recompute ({size} of features > memory budget {format_size(budget)}, and {folder} has "
        f"{format_size(free)} free); adapters may differ from a ram or mmap build in the last bits",
    )


def spill_parent(cache_root: Path | None) -> Path:
    """Where feature files go: the build cache's ``tmp`` folder, else the system's temporary folder."""
    return cache_root / "tmp" if cache_root is not None else Path(tempfile.gettempdir())


@contextlib.contextmanager
def spill_folder(cache_root: Path | None) -> Iterator[Path]:
    """A folder of this process for feature files, removed afterwards (a killed build's is removed by the next)."""
    parent = spill_parent(cache_root)
    parent.mkdir(parents=True, exist_ok=True)
    prefix = "" if cache_root is not None else SPILL_PREFIX  # the cache removes its own stale tmp folders
    if cache_root is None:
        remove_stale(parent, prefix)
    folder = make_owned_dir(parent, prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
