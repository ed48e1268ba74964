"""Stage 9: the checked files published as the bundle: flash checked, reports, checksums, sealed manifest, archive,
one atomic rename into place."""

from __future__ import annotations

import os
from pathlib import Path

from restnet_compile._util.units import format_size
from restnet_compile.bundle.manifest import MANIFEST, write_manifest
from restnet_compile.bundle.result import BuildResult, CacheSummary
from restnet_compile.bundle.writer import checksums, staging, write_archive
from restnet_compile.config.device import Profile
from restnet_compile.errors import InfeasibleError
from restnet_compile.pipeline.state import Checked
from restnet_compile.report.write import write_reports

MODEL_SUFFIXES = (".tflite", ".onnx", ".bin")  # what is flashed; C arrays and reports are not


def publish(checked: Checked, profile: Profile, out_dir: Path, name: str, cache: CacheSummary) -> BuildResult:
    """Write ``out_dir/name/`` and ``out_dir/name.tar.gz`` from the files in ``checked.root``, all or nothing.

    The files move into the staging directory (``checked.root`` must be on the same file system as ``out_dir``).
    ``cache``: what the build cache reused or stored, for the result.

    Raises:
        InfeasibleError: the exported models and the runtime need more flash than the profile has (exit code 3).
    """
    with staging(out_dir, name) as stage:
        for entry in sorted(checked.root.iterdir()):
            os.replace(entry, stage / entry.name)
        model_files = {f.name: f.stat().st_size for f in sorted(stage.iterdir()) if f.suffix in MODEL_SUFFIXES}
        model_bytes = sum(model_files.values())
        if model_bytes + profile.runtime_flash > profile.flash:
            raise InfeasibleError(
                f"bundle for profile {profile.name} needs flash {format_size(model_bytes + profile.runtime_flash)} "
                f"> {format_size(profile.flash)}"
            )
        manifest = checked.manifest.with_model_bytes(model_bytes)
        write_reports(stage, manifest, model_files)
        manifest = manifest.with_files(checksums(stage))
        write_manifest(stage / MANIFEST, manifest)
        write_archive(stage, stage.parent / f"{name}.tar.gz")
    return BuildResult(out_dir / name, out_dir / f"{name}.tar.gz", manifest, cache)
