"""Stage 9: the bundle published: flash checked, reports, checksums, sealed manifest, archive, atomic rename."""

from __future__ import annotations

from pathlib import Path

from restnet_compile._util.progress import Reporter
from restnet_compile._util.units import format_size
from restnet_compile.bundle.manifest import MANIFEST, write_manifest
from restnet_compile.bundle.result import BuildResult
from restnet_compile.bundle.writer import checksums, staging, write_archive
from restnet_compile.errors import InfeasibleError
from restnet_compile.pipeline.bundle_job import Staged, export_and_check
from restnet_compile.pipeline.stage_store import StageCache
from restnet_compile.pipeline.state import Analysis
from restnet_compile.report.write import write_reports

MODEL_SUFFIXES = (".tflite", ".onnx", ".bin")  # what is flashed; C arrays and reports are not


def publish(
    analysis: Analysis, out_dir: Path, name: str, progress: Reporter, store: StageCache, staged: Staged | None = None
) -> BuildResult:
    """Export, check parity and write ``out_dir/name/`` and ``out_dir/name.tar.gz``, all or nothing.

    ``staged``: the exported files and manifest a worker already made (see :mod:`.bundle_job`), else made here.

    Raises:
        InfeasibleError: the exported models and the runtime need more flash than the profile has (exit code 3).
    """
    profile = analysis.profile
    with staging(out_dir, name) as stage:
        manifest = staged.unpack(stage) if staged else export_and_check(analysis, stage, store, progress)
        model_files = {f.name: f.stat().st_size for f in sorted(stage.iterdir()) if f.suffix in MODEL_SUFFIXES}
        model_bytes = sum(model_files.values())
        if model_bytes + profile.runtime_flash > profile.flash:
            raise InfeasibleError(
                f"bundle for profile {profile.name} needs flash {format_size(model_bytes + profile.runtime_flash)} "
                f"> {format_size(profile.flash)}"
            )
        manifest = manifest.with_model_bytes(model_bytes)
        write_reports(stage, manifest, model_files)
        manifest = manifest.with_files(checksums(stage))
        write_manifest(stage / MANIFEST, manifest)
        write_archive(stage, stage.parent / f"{name}.tar.gz")
    return BuildResult(out_dir / name, out_dir / f"{name}.tar.gz", manifest, store.summary())
