"""Export and parity of one profile's bundle, in the staging directory or as one job on an executor's worker.

In process (the local executor) the files are written straight into the staging directory. On a worker they are
written into a temporary directory there and sent back (:class:`Staged`), and the caller writes them into its own
staging directory before publishing; the bytes are the same. A worker opens the build cache at the caller's cache
path: on a local Ray instance, or with the cache on a filesystem every node sees, exports are shared; otherwise a
worker keeps its own.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from restnet_compile._util.progress import Reporter
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.bundle.result import CacheEvent
from restnet_compile.pipeline.export import export_stage
from restnet_compile.pipeline.parity import drop_variants, parity_stage
from restnet_compile.pipeline.stage_store import StageCache
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
    """A bundle's files as a worker wrote them, before reports, checksums and the archive."""

    manifest: Manifest
    files: dict[str, bytes]
    dirs: list[str]
    events: list[CacheEvent]

    def unpack(self, stage: Path) -> Manifest:
        """Write the files into ``stage`` and return the manifest."""
        for d in self.dirs:
            (stage / d).mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return self.manifest


def bundle_job(analysis: Analysis, name: str, cache_root: str | None, *, progress: Reporter) -> Staged:
    """Export and parity of ``analysis`` in a temporary directory (a job of the executor), sent back whole."""
    store = StageCache.open(Path(cache_root) if cache_root else False, progress)
    with tempfile.TemporaryDirectory(prefix="restnet-bundle-") as tmp:
        stage = Path(tmp) / name
        stage.mkdir()
        manifest = export_and_check(analysis, stage, store, progress)
        paths = sorted(stage.rglob("*"))
        files = {p.relative_to(stage).as_posix(): p.read_bytes() for p in paths if p.is_file()}
        dirs = [p.relative_to(stage).as_posix() for p in paths if p.is_dir()]
        return Staged(manifest, files, dirs, store.events)
