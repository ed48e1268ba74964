"""The typed Python API behind the CLI: ``build()`` and the profile / target listings."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from restnet_compile._util.progress import Reporter, as_reporter
from restnet_compile._util.quiet import quiet_native_output
from restnet_compile._util.units import format_size
from restnet_compile.bundle.reference import REFERENCE_SAMPLES, write_reference
from restnet_compile.bundle.writer import check_output_dir, checksums, staging, write_archive, write_manifest
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import (
    Profile,
    Target,
    list_profiles,
    list_targets,
    load_profile,
    load_target,
    show_profile,
    show_target,
)
from restnet_compile.errors import BadInputError, InfeasibleError, ParityError, RestnetError
from restnet_compile.export import EXPORTERS
from restnet_compile.export.graph_cost import refine_costs
from restnet_compile.export.parity import ParityResult, check_parity, torch_logits
from restnet_compile.pipeline.analyze import AnalyzeResult
from restnet_compile.pipeline.manifest_build import add_parity, build_manifest
from restnet_compile.pipeline.stage_store import StageCache
from restnet_compile.pipeline.stages import Analysis, analyze_and_stitch
from restnet_compile.report.write import write_reports
from restnet_compile.runtime import Bundle
from restnet_compile.runtime.bundle import MANIFEST

MODEL_SUFFIXES = (".tflite", ".onnx", ".bin")  # what is flashed; C arrays and reports are not
__all__ = [
    "AnalyzeResult",
    "BuildResult",
    "analyze",
    "build",
    "calibrate",
    "list_profiles",
    "list_targets",
    "show_profile",
    "show_target",
]


@dataclass(frozen=True)
class BuildResult:
    """Where the bundle went and what it holds."""

    bundle_dir: Path
    archive: Path
    manifest: dict
    #: ``{"dir": ..., "stages": [{"stage": "cka", "reused": True}, ...]}``; never part of the manifest.
    cache: dict = field(default_factory=lambda: {"dir": None, "stages": []})


def resolve(config: BuildConfig) -> tuple[Profile, Target]:
    """Load the profile and target of ``config`` and check that they fit together."""
    profile = load_profile(config.profile)
    target = load_target(config.target or profile.target)
    if target.dtype not in profile.dtypes:
        raise BadInputError(
            f"target {target.name} emits {target.dtype} models but profile {profile.name} runs only "
            f"{', '.join(profile.dtypes)}; choose a target with one of those dtypes"
        )
    if target.float_ops and "fp32" not in profile.dtypes:  # an int8-only device: no float fallback for any op
        target = target.model_copy(update={"float_ops": []})
    EXPORTERS.get(target.exporter)
    return profile, target


def _export(a: Analysis, stage: Path, work: Path, progress: Reporter, stages: StageCache) -> dict:
    exporter = EXPORTERS.get(a.target.exporter)()
    calib = a.splits.calib.images
    for _attempt in range(len(a.variants) + 1):  # each repeat drops a variant its exported graph showed not to fit
        for stale in stage.iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        shipped = {v.id: v.module for v in a.variants if v.decision and v.decision.selected}
        progress(f"export: {len(shipped)} variants -> target {a.target.name}")
        progress.stage("export", 1)
        run = partial(exporter.export, shipped, a.large.input_shape, calib, a.target, stage, work)
        exported, reused = stages.export(a.config, a.target, shipped, calib, stage, run)
        if reused:
            progress("  export: reused (cache)")
        progress.advance("export")
        pareto = a.config.selection == "pareto"
        if not refine_costs(a.variants, stage, exported, a.profile, a.target, pareto, progress):
            break
    manifest = build_manifest(a, exported, exporter.layout)
    write_manifest(stage / MANIFEST, manifest)
    test = a.splits.test
    with quiet_native_output():  # interpreters announce their delegates on first use
        bundle = Bundle.open(stage)
        for vid in shipped:
            try:
                bundle.run(test.images[:1], vid)
            except RuntimeError as exc:  # e.g. XNNPACK cannot prepare a node: the device's LiteRT would fail alike
                why = " ".join(str(exc).split())
                runtime = f"{a.profile.runtime} ({a.target.name})"
                raise ParityError(f"variant {vid} does not run on {runtime}: {why}") from None
    parity: dict[str, ParityResult] = {}
    refs = {vid: torch_logits(module, test.images) for vid, module in shipped.items()}
    progress.stage("parity", len(shipped))
    for vid in shipped:
        parity[vid] = check_parity(bundle, vid, refs[vid], test.images, test.labels, a.target)
        progress(
            f"  parity {vid}: agreement {parity[vid].top1_agreement:.1%}, max |diff| {parity[vid].max_abs_diff:.2e}"
        )
        progress.advance("parity")
    failed = {k: r.failures for k, r in parity.items() if r.failures}
    if failed:
        vid, why = next(iter(failed.items()))
        raise ParityError(f"variant {vid} fails parity on target {a.target.name}: {'; '.join(why)}")
    add_parity(manifest, parity)
    n = REFERENCE_SAMPLES
    deployed = {vid: bundle.run(test.images[:n], vid) for vid in shipped}
    write_reference(stage, test.images[:n], {vid: r[:n] for vid, r in refs.items()}, deployed)
    return manifest


def build(
    config: BuildConfig,
    out_dir: Path,
    progress: Callable[[str], None] | Reporter | None = None,
    cache: Path | bool = True,
) -> BuildResult:
    """Run the whole pipeline and publish ``out_dir/<profile>-<target>/`` and its ``.tar.gz`` atomically.

    ``cache`` is where the CKA matrix, tuned adapters and exports are kept between builds: a directory, True for
    ``$RESTNET_COMPILE_CACHE`` (else ``$XDG_CACHE_HOME/restnet-compile``, else ``~/.cache/restnet-compile``), or
    False for none. A cached stage gives the same bytes as a computed one, so the bundle never depends on it.

    Raises:
        BadInputError: invalid names, files or output location (exit code 2).
        InfeasibleError: no variant fits the profile (3).
        ParityError: an exported variant disagrees with PyTorch (4).
    """
    progress = as_reporter(progress or (lambda _msg: None))
    profile, target = resolve(config)
    check_output_dir(out_dir)
    stages = StageCache.open(cache, progress)
    analysis = analyze_and_stitch(config, profile, target, progress, stages)
    name = f"{profile.name}-{target.name}"
    try:
        result = _publish(analysis, profile, out_dir, name, progress, stages)
        return BuildResult(result.bundle_dir, result.archive, result.manifest, stages.summary())
    except OSError as exc:  # a full disk or a vanished directory while writing: nothing is published
        raise RestnetError(f"output {out_dir}: cannot write the bundle: {exc.strerror or exc}") from None


def _publish(
    analysis: Analysis, profile: Profile, out_dir: Path, name: str, progress: Reporter, stages: StageCache
) -> BuildResult:
    with staging(out_dir, name) as stage:
        # inside the staging directory, so a killed build's leftovers are in one place; absolute, because exporters
        # change directory (onnx2tf runs in its work dir) and ``out_dir`` may be relative
        work = (stage.parent / "work").resolve()
        work.mkdir()
        manifest = _export(analysis, stage, work, progress, stages)
        model_bytes = sum(f.stat().st_size for f in stage.iterdir() if f.suffix in MODEL_SUFFIXES)
        if model_bytes + profile.runtime_flash > profile.flash:
            raise InfeasibleError(
                f"bundle for profile {profile.name} needs flash {format_size(model_bytes + profile.runtime_flash)} "
                f"> {format_size(profile.flash)}"
            )
        manifest["bundle_model_bytes"] = model_bytes
        write_reports(stage, manifest)
        manifest["files"] = checksums(stage)
        write_manifest(stage / MANIFEST, manifest)
        write_archive(stage, stage.parent / f"{name}.tar.gz")
    return BuildResult(out_dir / name, out_dir / f"{name}.tar.gz", manifest)


def analyze(config: BuildConfig, out_dir: Path | None = None, samples: int | None = None) -> AnalyzeResult:
    """CKA between every block of the large and the small model, the stitch candidates and ``out_dir/cka.png``.

    Args:
        config: Models, weights, data, seed and candidate rule (profile and target are not used).
        out_dir: Where ``cka.png`` goes; None writes nothing.
        samples: Calibration images to use (default: the whole calibration split).

    Raises:
        BadInputError: invalid models, checkpoints, data or shapes; nothing is written then.
    """
    from restnet_compile.pipeline.analyze import survey

    return survey(config, out_dir, samples)


def calibrate(
    profile: str, bundle_dir: Path, out: Path, measurements: Path | None = None, warmup: int = 10, runs: int = 100
) -> dict:
    """Fit ``profile``'s latency model to measured latencies of ``bundle_dir``'s variants; write it to ``out``.

    Without ``measurements`` the variants are timed here with LiteRT (host profiles only) and the CSV is written
    beside ``out``. Returns the fit: errors before / after and per-variant predictions.

    Raises:
        BadInputError: bad profile, bundle, CSV or output path; nothing is written then.
    """
    from restnet_compile.cost import calibrate as cal
    from restnet_compile.runtime.timing import measure_bundle

    prof = load_profile(profile)
    manifest = cal.read_manifest(bundle_dir)
    if measurements is None:
        if prof.device_class != "host":
            raise BadInputError(f"profile {prof.name} is not this machine: pass --measurements from the device")
        measurements = measure_bundle(bundle_dir, manifest, out.with_suffix(".csv"), warmup, runs, prof.threads)
    calibrated, fit, preds = cal.calibrate(profile, measurements, manifest, out)
    measured = cal.read_measurements(measurements)
    return {"profile": calibrated, "fit": fit, "predicted": preds, "measured": measured, "csv": measurements}
