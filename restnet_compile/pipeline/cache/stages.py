"""The build's stage cache: a stage's result is kept under a hash of its inputs and reused on a hit.

Each stage module declares its own :class:`StageKey` and what its result is made of; this module only keys, stores,
restores and records.

A key holds everything that determines the stage's output: the build config minus the fields that cannot change
it (an exclusion list, so fields added later are keyed automatically), the identity of the models (sha256 of their
weights file and of their architecture and every tensor), a fingerprint of the data splits, the package version and
a digest of its source, the versions of the tools that shape the bytes, the platform, and a schema version per stage.
A hit restores torch's global random state as the computation left it, so a resumed build is byte-identical to one
that computed everything.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import torch
from torch import nn

from restnet_compile._util.progress import Reporter
from restnet_compile.bundle._codec import decode, encode
from restnet_compile.bundle.result import CacheEvent, CacheSummary
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache.disk import DiskCache, Entry, cache_key, default_cache_dir, npy_bytes, npy_load
from restnet_compile.pipeline.cache.fingerprint import environment, module_digest, splits_digest
from restnet_compile.pipeline.load import weights_sha

T = TypeVar("T")
M = TypeVar("M")
#: What a stage stores beside its files: its metadata (a dataclass, None for none) and its files by name.
Saved: TypeAlias = "tuple[object | None, Mapping[str, bytes | Path]]"
_RNG = "torch_rng.npy"


@dataclass(frozen=True)
class StageKey:
    """How one stage is keyed.

    Attributes:
        kind: The stage's name in the cache.
        schema: Bump it when what the stage stores, or how it is computed, changes without a config change.
        not_inputs: Config fields that cannot change the stage's output (everything else is part of its key, so
            fields added later are keyed automatically). The fields the config leaves out of its own dump (how a
            build runs, such as ``executor`` and ``profiles``, never what it makes) are added to them.
    """

    kind: str
    schema: int
    not_inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        run_only = [name for name, f in BuildConfig.model_fields.items() if f.exclude]
        object.__setattr__(self, "not_inputs", tuple(dict.fromkeys([*self.not_inputs, *run_only])))

    def config_part(self, config: BuildConfig) -> dict[str, Any]:
        """The part of ``config`` that is an input of this stage."""
        return {k: v for k, v in config.model_dump(mode="json").items() if k not in self.not_inputs}


@dataclass(frozen=True)
class CacheBlob:
    """A cache entry as values, to travel between the driver and a worker: its key, meta and files' bytes."""

    key: str
    meta: dict[str, Any]
    files: dict[str, bytes]


def entries_of(disk: DiskCache, skip: set[str]) -> list[CacheBlob]:
    """Every entry of ``disk`` but those keyed in ``skip``, as values."""
    out: list[CacheBlob] = []
    for path in sorted(disk.entries.glob("*/*")):
        entry = disk.get(path.name) if path.name not in skip else None
        if entry is not None:
            out.append(CacheBlob(path.name, entry.meta, {n: entry.read(n) for n in entry.files}))
    return out


def state_files(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    """A state dict as numbered ``.npy`` files (names in ``state``'s order)."""
    return {f"state/{i:04d}.npy": npy_bytes(t.detach().cpu().numpy()) for i, t in enumerate(state.values())}


def read_state(entry: Entry, names: list[str]) -> dict[str, torch.Tensor]:
    """The state dict :func:`state_files` stored under ``names``."""
    files = [torch.from_numpy(npy_load(entry.read(f"state/{k:04d}.npy"))) for k in range(len(names))]
    return dict(zip(names, files, strict=True))


def read_meta(entry: Entry, cls: type[M]) -> M:
    """The metadata of ``entry`` as the dataclass ``cls`` that :meth:`StageCache.keep` stored (checked field by
    field; a mismatch raises, and the entry then reads as a miss)."""
    value: M = decode(cls, entry.meta)
    return value


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """A stage's key in the cache (None: caching off) and, on a hit, the stored result with the random state its
    computation left."""

    digest: str | None
    hit: tuple[T, torch.Tensor] | None = None


class StageCache:
    """The build's view of a :class:`DiskCache` (None: caching off); records what it reused or stored."""

    def __init__(self, disk: DiskCache | None, progress: Reporter) -> None:
        self.disk = disk
        self.progress = progress
        self.events: list[CacheEvent] = []
        self._memo: dict[tuple[str, int], tuple[object, str]] = {}  # keeps the object: its id stays unique
        self._env: dict[str, Any] | None = None

    @classmethod
    def open(cls, location: Path | bool, progress: Reporter) -> StageCache:
        """``location``: a directory, True for :func:`default_cache_dir`, False for no cache.

        A directory that cannot be used turns caching off with one progress line; it never fails the build.
        """
        if location is False:
            return cls(None, progress)
        root = default_cache_dir() if location is True else Path(location)
        try:
            return cls(DiskCache(root), progress)
        except OSError as exc:
            progress(f"cache: {root} is not usable ({exc.strerror or exc}); building without the cache")
            return cls(None, progress)

    @property
    def root(self) -> Path | None:
        """The cache directory, or None when caching is off."""
        return self.disk.root if self.disk else None

    def _digest(self, kind: str, obj: object, fn: Callable[[], str]) -> str:
        key = (kind, id(obj))
        if key not in self._memo:
            self._memo[key] = (obj, fn())
        return self._memo[key][1]

    def module(self, m: nn.Module) -> str:
        """Digest of ``m``'s architecture and tensors, computed once per object."""
        return self._digest("m", m, lambda: module_digest(m))

    def models(self, large: BlockSequence, small: BlockSequence, config: BuildConfig) -> dict[str, list[str]]:
        """Identity of the build's two models: checkpoint sha256 and module digest."""
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

    def data(self, splits: Splits) -> str:
        """Fingerprint of the data splits, computed once per object."""
        return self._digest("d", splits, lambda: splits_digest(splits))

    def digest(self, key: StageKey, inputs: Mapping[str, object]) -> str:
        """The cache key of a stage's ``inputs`` (this process's environment included)."""
        if self._env is None:
            self._env = environment()
        return cache_key(key.kind, key.schema, {**inputs, "environment": self._env})

    def blob(self, digest: str) -> CacheBlob | None:
        """The entry stored under ``digest`` as values (to send to a worker), or None."""
        entry = self.disk.get(digest) if self.disk is not None else None
        if entry is None:
            return None
        return CacheBlob(digest, entry.meta, {name: entry.read(name) for name in entry.files})

    def adopt(self, blobs: list[CacheBlob]) -> None:
        """Store entries a worker computed (in a disk cache of its own) in this cache."""
        for b in blobs:
            if self.disk is None:
                return
            try:
                self.disk.put(b.key, b.meta, b.files)
            except OSError as exc:
                self.progress(f"cache: cannot store {b.key[:12]}: {exc.strerror or exc}")

    def lookup(self, stage: str, key: StageKey, inputs: Mapping[str, object], load: Callable[[Entry], T]) -> Lookup[T]:
        """The stored result of ``stage`` for ``inputs``, if any, with the random state it left (torch's is unchanged).

        An entry that does not load (older layout, unknown adapter...) is a miss and is discarded.
        """
        if self.disk is None:
            return Lookup(None)
        digest = self.digest(key, inputs)
        entry = self.disk.get(digest)
        if entry is not None:
            try:
                value = load(entry)
                rng = torch.from_numpy(npy_load(entry.read(_RNG)))
            except Exception:
                self.disk.discard(digest)
            else:
                self._event(stage, True)
                return Lookup(digest, (value, rng))
        return Lookup(digest)

    def keep(
        self,
        stage: str,
        miss: Lookup[T],
        value: T,
        save: Callable[[T], Saved],
        rng: torch.Tensor,
    ) -> None:
        """Store ``value``, computed after ``miss``, with the random state ``rng`` its computation left (its
        metadata through the manifest's codec, read back by :func:`read_meta`)."""
        if miss.digest is None or self.disk is None:
            return
        meta, files = save(value)
        try:
            self.disk.put(
                miss.digest, encode(meta) if meta is not None else {}, {**files, _RNG: npy_bytes(rng.numpy())}
            )
        except OSError as exc:
            self.progress(f"cache: cannot store {stage}: {exc.strerror or exc}")
        self._event(stage, False)

    def run(
        self,
        stage: str,
        key: StageKey,
        inputs: Mapping[str, object],
        compute: Callable[[], T],
        save: Callable[[T], Saved],
        load: Callable[[Entry], T],
    ) -> tuple[T, bool]:
        """``stage``'s result from the cache (torch's random state restored as it was left), else computed and kept."""
        found = self.lookup(stage, key, inputs, load)
        if found.hit is not None:
            value, rng = found.hit
            torch.set_rng_state(rng)
            return value, True
        value = compute()
        self.keep(stage, found, value, save, torch.get_rng_state())
        return value, False

    def record(self, events: list[CacheEvent]) -> None:
        """Add the events of a stage that ran elsewhere (on a worker, with its own view of the cache)."""
        for e in events:
            self._event(e.stage, e.reused)

    def _event(self, stage: str, reused: bool) -> None:
        self.events.append(CacheEvent(stage, reused))
        self.progress.cache(stage, reused)

    def summary(self) -> CacheSummary:
        """The cache directory (None: off) and every cached stage, reused or computed."""
        return CacheSummary(str(self.root) if self.root else None, tuple(self.events))


def empty_dir(directory: Path) -> None:
    """Remove everything inside ``directory``."""
    for p in directory.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
