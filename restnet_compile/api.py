"""The typed Python API behind the CLI: ``build()`` and the profile / target listings."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from restnet_compile.buildconfig import BuildConfig
from restnet_compile.config import Profile, Target, builtin_names, builtin_text, load_profile, load_target
from restnet_compile.errors import BadInputError, InfeasibleError, ParityError
from restnet_compile.export import EXPORTERS
from restnet_compile.export.bundle import check_output_dir, checksums, staging, write_archive, write_json
from restnet_compile.export.parity import ParityResult, check_parity, torch_logits
from restnet_compile.export.quiet import quiet_native_output
from restnet_compile.manifest import add_parity, build_manifest
from restnet_compile.pipeline import Analysis, analyze_and_stitch
from restnet_compile.report import render_report
from restnet_compile.runtime import Bundle
from restnet_compile.runtime.bundle import MANIFEST
from restnet_compile.units import format_size

__all__ = ["BuildResult", "build", "list_profiles", "list_targets", "show_profile", "show_target"]


@dataclass(frozen=True)
class BuildResult:
    """Where the bundle went and what it holds."""

    bundle_dir: Path
    archive: Path
    manifest: dict


def resolve(config: BuildConfig) -> tuple[Profile, Target]:
    """Load the profile and target of ``config`` and check that they fit together."""
    profile = load_profile(config.profile)
    target = load_target(config.target or profile.target)
    if target.dtype not in profile.dtypes:
        raise BadInputError(
            f"target {target.name} emits {target.dtype} models but profile {profile.name} runs only "
            f"{', '.join(profile.dtypes)}; choose a target with one of those dtypes"
        )
    EXPORTERS.get(target.exporter)
    return profile, target


def _export(a: Analysis, stage: Path, work: Path, progress: Callable[[str], None]) -> dict:
    shipped = {v.id: v.module for v in a.variants if v.decision and v.decision.selected}
    exporter = EXPORTERS.get(a.target.exporter)()
    progress(f"export: {len(shipped)} variants -> target {a.target.name}")
    calib = a.splits.calib.images
    exported = exporter.export(shipped, a.large.input_shape, calib, a.target, stage, work)
    manifest = build_manifest(a, exported, exporter.layout)
    write_json(stage / MANIFEST, manifest)
    test = a.splits.test
    with quiet_native_output():  # interpreters announce their delegates on first use
        bundle = Bundle.open(stage)
        for vid in shipped:
            bundle.run(test.images[:1], vid)
    parity: dict[str, ParityResult] = {}
    for vid, module in shipped.items():
        parity[vid] = check_parity(bundle, vid, torch_logits(module, test.images), test.images, test.labels, a.target)
        progress(
            f"  parity {vid}: agreement {parity[vid].top1_agreement:.1%}, max |diff| {parity[vid].max_abs_diff:.2e}"
        )
    failed = {k: r.failures for k, r in parity.items() if r.failures}
    if failed:
        vid, why = next(iter(failed.items()))
        raise ParityError(f"variant {vid} fails parity on target {a.target.name}: {'; '.join(why)}")
    add_parity(manifest, parity)
    return manifest


def build(config: BuildConfig, out_dir: Path, progress: Callable[[str], None] = lambda _: None) -> BuildResult:
    """Run the whole pipeline and publish ``out_dir/<profile>-<target>/`` and its ``.tar.gz`` atomically.

    Raises:
        BadInputError: invalid names, files or output location (exit code 2).
        InfeasibleError: no variant fits the profile (3).
        ParityError: an exported variant disagrees with PyTorch (4).
    """
    profile, target = resolve(config)
    check_output_dir(out_dir)
    analysis = analyze_and_stitch(config, profile, target, progress)
    name = f"{profile.name}-{target.name}"
    with staging(out_dir, name) as stage, tempfile.TemporaryDirectory(prefix="restnet-work-") as work:
        manifest = _export(analysis, stage, Path(work), progress)
        model_bytes = sum(f.stat().st_size for f in stage.iterdir() if f.name != MANIFEST)
        if model_bytes + profile.runtime_flash > profile.flash:
            raise InfeasibleError(
                f"bundle for profile {profile.name} needs flash {format_size(model_bytes + profile.runtime_flash)} "
                f"> {format_size(profile.flash)}"
            )
        manifest["bundle_model_bytes"] = model_bytes
        (stage / "report.md").write_text(render_report(manifest))
        manifest["files"] = checksums(stage)
        write_json(stage / MANIFEST, manifest)
        write_archive(stage, stage.parent / f"{name}.tar.gz")
    return BuildResult(out_dir / name, out_dir / f"{name}.tar.gz", manifest)


def list_profiles() -> list[Profile]:
    """Every built-in profile."""
    return [load_profile(n) for n in builtin_names("profiles")]


def list_targets() -> list[Target]:
    """Every built-in target."""
    return [load_target(n) for n in builtin_names("targets")]


def show_profile(name_or_path: str) -> str:
    """The YAML text of one profile, after validating it."""
    load_profile(name_or_path)
    return builtin_text("profiles", name_or_path)


def show_target(name_or_path: str) -> str:
    """The YAML text of one target, after validating it."""
    load_target(name_or_path)
    return builtin_text("targets", name_or_path)
