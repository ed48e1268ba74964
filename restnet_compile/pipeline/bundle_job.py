"""Export and parity of one profile's bundle, in the staging directory or as one job on an executor's worker.

In process (the local executor) the files are written straight into the staging directory. On a worker, which may
be another machine and shares no files with the caller, they are written into a temporary folder of the worker's own
and sent back (:class:`Staged`); the caller writes them into its own staging directory before publishing, so the
bytes are the same. The worker never opens the caller's build cache: the caller sends the cache entry the export
would reuse, if it has one, and the worker sends back the entries it computed, which the caller stores.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from restnet_compile._util.progress import Reporter
from restnet_compile._util.tempdirs import make_owned_dir
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.bundle.result import CacheEvent
from restnet_compile.pipeline.cache_store import CacheStore
from restnet_compile.pipeline.executor import BUNDLE_PREFIX, sweep_temp
from restnet_compile.pipeline.export import KEY as EXPORT_KEY
from restnet_compile.pipeline.export import export_inputs, export_stage
from restnet_compile.pipeline.parity import drop_variants, parity_stage
from restnet_compile.pipeline.stage_store import CacheBlob, StageCache, entries_of
from restnet_compile.pipeline.state import Analysis


def export_and_check(analysis: Analysis, stage: Path, store: StageCache, progress: Reporter) -> Manifest:
    """Export ``analysis``'s selection into ``stage`` and check parity; the manifest without reports and checksums.

    A stitched variant that fails parity is dropped, the selection decided again without it and the new selection
    exported (see :mod:`restnet_compile.pipeline.parity`).

    Raises:
        ParityError: an anchor fails parity, no variant is left, or any variant fails with ``strict_parity``.
    """
    # beside ``stage``, so a killed build's leftovers are in one place; absolute, because exporters change directory
    # (onnx2tf runs in its work dir) and ``stage`` may be relative
    work = (stage.parent / "work").resolve()
    work.mkdir()
    for _attempt in range(len(analysis.variants)):  # each repeat drops at least one stitched variant
        exported = export_stage(analysis, stage, work, store, progress)
        checked = parity_stage(exported, stage, progress)
        if isinstance(checked, Manifest):
            return checked
        analysis = drop_variants(exported.analysis, checked, progress)
    raise AssertionError("parity dropped more variants than the build has")


@dataclass(frozen=True)
class Staged:
    """A bundle's files as a worker wrote them, before reports, checksums and the archive; the cache entries it
    computed and what it reused or stored."""

    manifest: Manifest
    files: dict[str, bytes]
    dirs: list[str]
    events: list[CacheEvent]
    entries: list[CacheBlob]

    def unpack(self, stage: Path) -> Manifest:
        """Write the files into ``stage`` and return the manifest."""
        for d in self.dirs:
            (stage / d).mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return self.manifest


def cache_seed(analysis: Analysis, store: StageCache) -> list[CacheBlob]:
    """The caller's cache entry for the export of ``analysis``'s selection, if it has one (for :func:`bundle_job`)."""
    if store.root is None:
        return []
    found = store.blob(store.digest(EXPORT_KEY, export_inputs(analysis, store)))
    return [found] if found is not None else []


def bundle_job(analysis: Analysis, name: str, seed: list[CacheBlob], caching: bool, *, progress: Reporter) -> Staged:
    """Export and parity of ``analysis`` in a temporary folder (a job of the executor), sent back whole.

    ``seed`` holds the caller's cache entries the job may reuse; with ``caching``, the entries it computes are sent
    back for the caller to store.
    """
    sweep_temp()
    tmp = make_owned_dir(Path(tempfile.gettempdir()), BUNDLE_PREFIX)
    try:
        store = StageCache(CacheStore(tmp / "cache"), progress) if caching else StageCache(None, progress)
        if store.store is not None:
            for b in seed:
                store.store.put(b.key, b.meta, b.files)
        stage = tmp / name
        stage.mkdir()
        manifest = export_and_check(analysis, stage, store, progress)
        paths = sorted(stage.rglob("*"))
        files = {p.relative_to(stage).as_posix(): p.read_bytes() for p in paths if p.is_file()}
        dirs = [p.relative_to(stage).as_posix() for p in paths if p.is_dir()]
        fresh = entries_of(store.store, {b.key for b in seed}) if store.store is not None else []
        return Staged(manifest, files, dirs, store.events, fresh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
