"""Cached build stages: the CKA matrix, each tuned adapter and each export, keyed by a hash of their inputs.

A key holds everything that determines the stage's output: the build config minus the fields that cannot change
it (an exclusion list, so fields added later are keyed automatically), the identity of the models (sha256 of their
weights file and of their architecture and every tensor), a fingerprint of the data splits, the package version and
a digest of its source, the versions of the tools that shape the bytes, the platform, and a schema version per stage.
A hit restores torch's global random state as the computation left it, so a resumed build is byte-identical to one
that computed everything.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from torch import nn

from restnet_compile._util.progress import Reporter
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache_store import CacheStore, Entry, cache_key, default_cache_dir, npy_bytes, npy_load
from restnet_compile.pipeline.fingerprint import array_digest, environment, module_digest, splits_digest
from restnet_compile.stitching import ADAPTERS, Candidate, StitchedNet, StitchedVariant, StitchPoint
from restnet_compile.stitching.tuning.loop import TuneResult

if TYPE_CHECKING:
    from restnet_compile.config.device import Target
    from restnet_compile.export.base import ExportedVariant

T = TypeVar("T")
#: Bump a stage's number when what it stores, or how its result is computed, changes without a config change.
SCHEMA = {"cka": 1, "tune": 1, "export": 1}
#: Config fields that cannot change a stage's output (everything else is part of its key).
NOT_INPUTS = {
    "cka": ("plan", "tune", "selection", "profile", "target"),
    "tune": ("selection", "profile", "target"),
    "export": ("plan", "tune", "selection", "profile"),
}
_RNG = "torch_rng.npy"


@dataclass(frozen=True)
class CacheEvent:
    """One cached stage of a build: ``reused`` from the cache, or computed and stored."""

    stage: str
    reused: bool


def _config_part(config: BuildConfig, stage: str) -> dict:
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in NOT_INPUTS[stage]}


def _state_files(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {f"state/{i:04d}.npy": npy_bytes(t.detach().cpu().numpy()) for i, t in enumerate(state.values())}


class StageCache:
    """The build's view of a :class:`CacheStore` (None: caching off); records what it reused or stored."""

    def __init__(self, store: CacheStore | None, progress: Reporter) -> None:
        self.store = store
        self.progress = progress
        self.events: list[CacheEvent] = []
        self._memo: dict[tuple[str, int], tuple[object, str]] = {}  # keeps the object: its id stays unique
        self._env: dict | None = None

    @classmethod
    def open(cls, location: Path | bool, progress: Reporter) -> StageCache:
        """``location``: a directory, True for :func:`default_cache_dir`, False for no cache.

        A directory that cannot be used turns caching off with one progress line; it never fails the build.
        """
        if location is False:
            return cls(None, progress)
        root = default_cache_dir() if location is True else Path(location)
        try:
            return cls(CacheStore(root), progress)
        except OSError as exc:
            progress(f"cache: {root} is not usable ({exc.strerror or exc}); building without the cache")
            return cls(None, progress)

    @property
    def root(self) -> Path | None:
        """The cache directory, or None when caching is off."""
        return self.store.root if self.store else None

    def _digest(self, kind: str, obj: object, fn: Callable[[], str]) -> str:
        key = (kind, id(obj))
        if key not in self._memo:
            self._memo[key] = (obj, fn())
        return self._memo[key][1]

    def _models(self, large: BlockSequence, small: BlockSequence, config: BuildConfig) -> dict:
        from restnet_compile.pipeline.stages import weights_sha

        return {
            "large": [
                weights_sha(config.large, config.large_weights),
                self._digest("m", large, lambda: module_digest(large)),
            ],
            "small": [
                weights_sha(config.small, config.small_weights),
                self._digest("m", small, lambda: module_digest(small)),
            ],
        }

    def _run(
        self,
        stage: str,
        kind: str,
        inputs: dict,
        compute: Callable[[], T],
        save: Callable[[T], tuple[dict, dict[str, bytes | Path]]],
        load: Callable[[Entry], T],
    ) -> tuple[T, bool]:
        if self.store is None:
            return compute(), False
        if self._env is None:
            self._env = environment()
        key = cache_key(kind, SCHEMA[kind], {**inputs, "environment": self._env})
        entry = self.store.get(key)
        if entry is not None:
            try:
                value = load(entry)
                torch.set_rng_state(torch.from_numpy(npy_load(entry.read(_RNG))))
            except Exception:  # an entry that does not load (older layout, unknown adapter...) is a miss
                self.store.discard(key)
            else:
                self._event(stage, True)
                return value, True
        value = compute()
        meta, files = save(value)
        files = {**files, _RNG: npy_bytes(torch.get_rng_state().numpy())}
        try:
            self.store.put(key, meta, files)
        except OSError as exc:
            self.progress(f"cache: cannot store {stage}: {exc.strerror or exc}")
        self._event(stage, False)
        return value, False

    def _event(self, stage: str, reused: bool) -> None:
        self.events.append(CacheEvent(stage, reused))
        self.progress.cache(stage, reused)

    def cka(
        self,
        config: BuildConfig,
        large: BlockSequence,
        small: BlockSequence,
        splits: Splits,
        compute: Callable[[], np.ndarray],
    ) -> tuple[np.ndarray, bool]:
        """The CKA matrix from the cache, or ``compute()`` stored; and whether it was reused."""
        inputs = {
            "config": _config_part(config, "cka"),
            "models": self._models(large, small, config),
            "data": self._data(splits),
        }
        return self._run(
            "cka",
            "cka",
            inputs,
            compute,
            lambda m: ({}, {"cka.npy": npy_bytes(m)}),
            lambda e: npy_load(e.read("cka.npy")),
        )

    def _data(self, splits: Splits) -> str:
        return self._digest("d", splits, lambda: splits_digest(splits))

    def tuned(
        self,
        config: BuildConfig,
        candidate: Candidate,
        models: tuple[BlockSequence, BlockSequence],
        front: BlockSequence,
        back: BlockSequence,
        splits: Splits,
        compute: Callable[[], StitchedVariant],
    ) -> tuple[StitchedVariant, bool]:
        """The tuned variant of ``candidate`` (its adapter's state from the cache), or ``compute()`` stored."""
        inputs = {
            "config": _config_part(config, "tune"),
            "candidate": dataclasses.asdict(candidate),
            "models": self._models(*models, config),
            "data": self._data(splits),
        }

        def save(sv: StitchedVariant) -> tuple[dict, dict[str, bytes | Path]]:
            state = sv.net.adapter.state_dict()
            meta = {
                "candidate": dataclasses.asdict(sv.candidate),
                "ls_r2": sv.ls_r2,
                "tune": dataclasses.asdict(sv.tune),
                "tune_seconds": sv.tune_seconds,
                "state": list(state),
                "net": module_digest(sv.net),
            }
            return meta, _state_files(state)

        def load(e: Entry) -> StitchedVariant:
            m = e.meta
            c = Candidate(**{**m["candidate"], "point": StitchPoint(**m["candidate"]["point"])})
            i, j = c.point.front_block, c.point.back_block
            adapter = ADAPTERS.get(c.adapter)(front.feature_specs()[i], back.feature_specs()[j])
            files = [torch.from_numpy(npy_load(e.read(f"state/{k:04d}.npy"))) for k in range(len(m["state"]))]
            adapter.load_state_dict(dict(zip(m["state"], files, strict=True)), strict=True)
            for p in adapter.parameters():
                p.requires_grad_(False)
            net = StitchedNet(front, back, c.point, adapter).eval()
            if module_digest(net) != m["net"]:  # e.g. a recipe that changed more than the adapter
                raise ValueError("the rebuilt network differs from the tuned one")
            return StitchedVariant(net, c, m["ls_r2"], TuneResult(**m["tune"]), m["tune_seconds"])

        return self._run(f"tune {candidate.point.variant_id}", "tune", inputs, compute, save, load)

    def export(
        self,
        config: BuildConfig,
        target: Target,
        shipped: dict[str, nn.Module],
        calib: np.ndarray,
        out_dir: Path,
        compute: Callable[[], dict[str, ExportedVariant]],
    ) -> tuple[dict[str, ExportedVariant], bool]:
        """The files of one export of ``shipped`` copied into ``out_dir`` from the cache, or ``compute()`` stored."""
        inputs = {
            "config": _config_part(config, "export"),
            "target": target.model_dump(mode="json"),
            "variants": [[vid, self._digest("m", m, lambda m=m: module_digest(m))] for vid, m in shipped.items()],
            "calib": array_digest(calib),
        }

        def save(exported: dict[str, ExportedVariant]) -> tuple[dict, dict[str, bytes | Path]]:
            files: dict[str, bytes | Path] = {
                f"tree/{p.relative_to(out_dir).as_posix()}": p for p in sorted(out_dir.rglob("*")) if p.is_file()
            }
            return {"exported": [[vid, ev.file, ev.signature] for vid, ev in exported.items()]}, files

        def load(e: Entry) -> dict[str, ExportedVariant]:
            from restnet_compile.export.base import ExportedVariant

            try:
                for name in e.files:
                    if name.startswith("tree/"):
                        dest = out_dir / name.removeprefix("tree/")
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(e.file(name), dest)
                return {vid: ExportedVariant(f, s) for vid, f, s in e.meta["exported"]}
            except Exception:
                _empty(out_dir)  # the export that runs instead starts from an empty directory
                raise

        return self._run("export", "export", inputs, compute, save, load)

    def summary(self) -> dict:
        """For the JSON output: the cache directory (None: off) and every cached stage, reused or computed."""
        return {
            "dir": str(self.root) if self.root else None,
            "stages": [{"stage": e.stage, "reused": e.reused} for e in self.events],
        }


def _empty(directory: Path) -> None:
    for p in directory.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
