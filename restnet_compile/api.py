"""The typed Python API: one function per verb, each returning a typed result. The CLI is a thin layer over it.

Compiler verbs (``build``, ``analyze``, ``calibrate``, ``make_patch``) import the toolchain when called; the bundle
verbs (``inspect``, ``verify``, ``predict``, ``bench``, ``apply_patch``) need only the device runtime.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restnet_compile.bundle.manifest import Manifest, load_manifest
from restnet_compile.bundle.result import BuildResult, FleetResult, ProfileFailure
from restnet_compile.errors import BadInputError, InfeasibleError, ParityError
from restnet_compile.runtime import Bundle, BundleError, VariantInfo
from restnet_compile.runtime.benchmark import VariantTiming, benchmark
from restnet_compile.runtime.inputs import load_image
from restnet_compile.runtime.timing import time_calls
from restnet_compile.runtime.verify import VariantCheck, verify_reference

if TYPE_CHECKING:
    from collections.abc import Callable

    from restnet_compile._util.progress import Reporter
    from restnet_compile.config.build import BuildConfig
    from restnet_compile.config.device import Profile, Target
    from restnet_compile.cost.calibrate import Measurement
    from restnet_compile.cost.latency import Fit
    from restnet_compile.firmware import FirmwareResult
    from restnet_compile.models.block_table import BlockInfo
    from restnet_compile.pipeline.analyze import AnalyzeResult

__all__ = [
    "BuildResult",
    "CalibrationResult",
    "FirmwareResult",
    "FleetResult",
    "Manifest",
    "ModelBlocks",
    "PatchResult",
    "Prediction",
    "ProfileFailure",
    "analyze",
    "bench",
    "blocks",
    "build",
    "build_fleet",
    "calibrate",
    "firmware",
    "inspect",
    "list_profiles",
    "list_targets",
    "open_bundle",
    "predict",
    "show_profile",
    "show_target",
    "verify",
]


def build(
    config: BuildConfig,
    out_dir: Path,
    progress: Callable[[str], None] | Reporter | None = None,
    cache: Path | bool = True,
) -> BuildResult:
    """Build for one profile: publish ``out_dir/<profile>-<target>/`` and its ``.tar.gz`` atomically.

    ``config.executor`` runs the jobs in this process (``local``) or as Ray tasks (``ray``; the same bytes), and
    ``config.device`` is where CKA and tuning run. Costs are screened before CKA and tuning, so a profile that
    nothing fits fails within seconds. For several profiles, see :func:`build_fleet`.

    ``cache`` is where the CKA matrix, tuned adapters and exports are kept between builds: a directory, True for
    ``$RESTNET_COMPILE_CACHE`` (else ``$XDG_CACHE_HOME/restnet-compile``, else ``~/.cache/restnet-compile``), or
    False for none. A cached stage gives the same bytes as a computed one, so the bundle never depends on it.
    Torch's thread count, determinism flags and global random state are restored when the call returns.

    Raises:
        BadInputError: invalid names, files or output location, an executor or device this machine cannot use, or
            a config that names several profiles (exit code 2).
        InfeasibleError: no variant fits the profile (3).
        ParityError: an exported variant disagrees with PyTorch (4).
    """
    from restnet_compile._util.torch_state import deterministic
    from restnet_compile.pipeline.driver import run_build

    with deterministic(config.seed, config.threads):
        return run_build(config, out_dir, progress or (lambda _msg: None), cache)


def build_fleet(
    config: BuildConfig,
    out_dir: Path,
    progress: Callable[[str], None] | Reporter | None = None,
    cache: Path | bool = True,
) -> FleetResult:
    """Build one bundle per profile of ``config.profiles`` (or its one ``profile``) from one CKA and one tuning.

    Each bundle is ``out_dir/<profile>-<target>/`` and its ``.tar.gz``, published atomically and byte-identical to
    what :func:`build` writes for that profile alone. A profile that fails (nothing fits it, parity...) publishes
    nothing and is listed in ``failures``; the others are still published. ``cache`` and the torch state are as
    in :func:`build`.

    Raises:
        BadInputError: invalid names, files or output location, or the same profile twice (exit code 2), before
            anything is written.
    """
    from restnet_compile._util.torch_state import deterministic
    from restnet_compile.pipeline.driver import run_fleet

    with deterministic(config.seed, config.threads):
        return run_fleet(config, out_dir, progress or (lambda _msg: None), cache)


def analyze(config: BuildConfig, out_dir: Path | None = None, samples: int | None = None) -> AnalyzeResult:
    """CKA between every block of the large and the small model, the stitch candidates and ``out_dir/cka.png``.

    Args:
        config: Models, weights, data, seed and candidate rule (profile and target are not used).
        out_dir: Where ``cka.png`` goes; None writes nothing.
        samples: Calibration images to use (default: the whole calibration split).

    Raises:
        BadInputError: invalid models, checkpoints, data or shapes; nothing is written then.
    """
    from restnet_compile._util.torch_state import deterministic
    from restnet_compile.pipeline.analyze import survey

    with deterministic(config.seed, config.threads):
        return survey(config, out_dir, samples)


@dataclass(frozen=True)
class ModelBlocks:
    """The blocks a build cuts one model into: what a user reads to choose ``large_split`` / ``small_split``.

    Attributes:
        role: ``large`` or ``small``.
        model: The model's name as given.
        input_shape: ``(C, H, W)`` it takes.
        rows: Every block, then the head: where it ends in the original model, its output and its multiply-adds.
    """

    role: str
    model: str
    input_shape: tuple[int, int, int]
    rows: list[BlockInfo]


def blocks(config: BuildConfig, roles: tuple[str, ...] = ("large", "small")) -> list[ModelBlocks]:
    """The blocks of ``config``'s models named by ``roles`` (a family's: every anchor, ``roles`` aside), as the build
    splits them (with ``*_split`` and ``max_blocks``); no data is read.

    Raises:
        BadInputError: invalid models, checkpoints, splits or preprocessing contracts.
    """
    from restnet_compile._util.torch_state import deterministic
    from restnet_compile.models.block_table import block_table
    from restnet_compile.pipeline.load import load_model, load_spec

    with deterministic(config.seed, config.threads):
        out = []
        if config.models is not None:  # a family: every anchor, as given
            for i, spec in enumerate(config.models):
                model = load_spec(config, spec, f"models[{i}].preprocess", f"models[{i}]")
                out.append(ModelBlocks(f"models[{i}]", model.model_name, model.input_shape, block_table(model)))
            return out
        for role in roles:
            model = load_model(config, role)
            out.append(ModelBlocks(role, model.model_name, model.input_shape, block_table(model)))
        return out


@dataclass(frozen=True)
class CalibrationResult:
    """A profile's latency model fitted to a bundle's measured latencies.

    Attributes:
        profile: The calibrated profile (also written as YAML).
        fit: Median absolute percentage error before and after.
        predicted: Per variant, the predicted median latency (ms) before and after calibration.
        measured: Per variant, the measurements read from the CSV.
        csv: The measurements CSV (written here when the variants were timed on this machine).
    """

    profile: Profile
    fit: Fit
    predicted: dict[str, tuple[float, float]]
    measured: dict[str, Measurement]
    csv: Path


def calibrate(
    profile: str, bundle_dir: Path, out: Path, measurements: Path | None = None, warmup: int = 10, runs: int = 100
) -> CalibrationResult:
    """Fit ``profile``'s latency model to measured latencies of ``bundle_dir``'s variants; write it to ``out``.

    Without ``measurements`` the variants are timed here with LiteRT (host profiles only; a variant stored as a chain
    of segments as the runtime runs it) and the CSV is written beside ``out``. A chained variant's measurement is
    fitted as one interpreter call per segment.

    Raises:
        BadInputError: bad profile, bundle, CSV or output path; nothing is written then.
    """
    from restnet_compile.config.device import load_profile
    from restnet_compile.cost import calibrate as cal
    from restnet_compile.runtime.timing import measure_bundle

    prof = load_profile(profile)
    try:
        manifest = load_manifest(bundle_dir)
    except BundleError as exc:
        raise BadInputError(str(exc)) from None
    if measurements is None:
        if prof.device_class != "host":
            raise BadInputError(f"profile {prof.name} is not this machine: pass --measurements from the device")
        csv = out.with_suffix(".csv")
        chained = [v.id for v in manifest.shipped() if v.runs_as_chain]
        by_file = manifest.signatures_by_file()
        measurements = measure_bundle(bundle_dir, by_file, csv, warmup, runs, prof.threads, chained)
    invokes = {v.id: len(v.chain or ()) if v.runs_as_chain else 1 for v in manifest.variants}  # calls per run
    calibrated, fit, preds = cal.calibrate(profile, measurements, manifest.latency_terms(), out, invokes)
    return CalibrationResult(calibrated, fit, preds, cal.read_measurements(measurements), measurements)


def list_profiles() -> list[Profile]:
    """Every built-in profile."""
    from restnet_compile.config import device

    return device.list_profiles()


def list_targets() -> list[Target]:
    """Every built-in target."""
    from restnet_compile.config import device

    return device.list_targets()


def show_profile(name_or_path: str) -> str:
    """The YAML text of one profile, after validating it."""
    from restnet_compile.config import device

    return device.show_profile(name_or_path)


def show_target(name_or_path: str) -> str:
    """The YAML text of one target, after validating it."""
    from restnet_compile.config import device

    return device.show_target(name_or_path)


def open_bundle(path: Path) -> Bundle:
    """Open a bundle; a missing, altered or unsafe file becomes a one-line bad-input error (exit code 2)."""
    try:
        return Bundle.open(path)
    except BundleError as exc:
        raise BadInputError(str(exc)) from None


@contextmanager
def bundle_dir(path: Path) -> Iterator[Path]:
    """``path`` itself, or for the ``.tar.gz`` a build writes, its bundle unpacked in a temporary directory that is
    removed after the block.

    Raises:
        BadInputError: an archive that is not a readable ``.tar.gz`` of one bundle directory (exit code 2).
    """
    if not (path.name.endswith((".tar.gz", ".tgz")) and path.is_file()):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="restnet-bundle-") as tmp:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(tmp, filter="data")  # no absolute paths, links out or device files
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BadInputError(f"{path}: not a readable .tar.gz of a bundle ({exc})") from None
        roots = [p.parent for p in Path(tmp).glob("*/manifest.json")]
        if len(roots) != 1:
            raise BadInputError(f"{path}: expected one bundle directory with a manifest.json inside the archive")
        yield roots[0]


def inspect(path: Path) -> Manifest:
    """The manifest of a bundle (a directory or its ``.tar.gz``) after its seal and checksums pass
    (``to_json_dict()`` gives its JSON)."""
    with bundle_dir(path) as root:
        return open_bundle(root).manifest


def verify(path: Path) -> list[VariantCheck]:
    """Checksums, then the stored reference inputs through the device runtime (a bundle directory or its
    ``.tar.gz``).

    Raises:
        BadInputError: a file is missing or altered (exit code 2).
        ParityError: a variant no longer reproduces its recorded outputs (exit code 4).
    """
    with bundle_dir(path) as root:
        try:
            checks = verify_reference(open_bundle(root))
        except BundleError as exc:
            raise BadInputError(str(exc)) from None
    failed = [c for c in checks if not c.ok]
    if failed:
        c = failed[0]
        raise ParityError(
            f"variant {c.variant} does not reproduce its recorded outputs: top-1 same on "
            f"{c.top1_same_as_deployed:.0%}, max |diff| {c.max_abs_diff_deployed:.3g}"
        )
    return checks


@dataclass(frozen=True)
class Prediction:
    """One prediction, the variant that made it and how long it took on this machine.

    Attributes:
        variant: The variant that ran.
        label: The predicted class.
        scores: The logits.
        latency_ms: Steady latency: the median of ``runs`` timed runs after the warm-up runs.
        first_run_ms: The first run alone, which includes the interpreter's set-up.
        runs: Timed runs behind ``latency_ms``.
    """

    variant: str
    label: int
    scores: list[float]
    latency_ms: float
    first_run_ms: float
    runs: int


def predict(
    path: Path,
    image: Path,
    budget_ms: float | None = None,
    variant: str | None = None,
    warmup: int = 3,
    runs: int = 20,
) -> Prediction:
    """Classify ``image`` with ``variant``, or with the most accurate variant within ``budget_ms``.

    The image runs once (timed as the first run), ``warmup`` more times untimed, then ``runs`` timed times.

    Raises:
        BadInputError: unreadable image, unknown variant, or fewer than one timed run.
        InfeasibleError: nothing meets the budget (the message names the closest variant).
    """
    if runs < 1 or warmup < 0:
        raise BadInputError(f"predict needs runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    bundle = open_bundle(path)
    x = load_image(image, bundle.manifest.input)
    try:
        chosen: VariantInfo = bundle.get(variant) if variant else bundle.select(latency_ms=budget_ms)
    except BundleError as exc:
        raise (BadInputError if variant else InfeasibleError)(str(exc)) from None
    outputs: list[np.ndarray[Any, Any]] = []
    timing = time_calls({chosen.id: lambda: outputs.append(bundle.run(x, chosen.id)[0])}, warmup, runs)[chosen.id]
    logits = outputs[0]
    return Prediction(
        variant=chosen.id,
        label=int(logits.argmax()),
        scores=[round(float(s), 4) for s in logits],
        latency_ms=round(timing.p50 / 1e3, 4),
        first_run_ms=round(timing.first / 1e3, 4),
        runs=timing.count,
    )


def bench(path: Path, warmup: int = 10, runs: int = 100) -> list[VariantTiming]:
    """Latency of every shipped variant on this machine."""
    return benchmark(open_bundle(path), warmup, runs)


@dataclass(frozen=True)
class PatchResult:
    """A written patch: where, its bytes, and the bundle it makes (built in full to diff against)."""

    path: Path
    patch_bytes: int
    bundle_bytes: int
    variants_added: list[str]


def make_patch(
    old_bundle: Path,
    config: BuildConfig,
    out: Path,
    cache: Path | bool = True,
    progress: Callable[[str], None] | None = None,
) -> PatchResult:
    """Build ``config`` and write to ``out`` the patch that turns ``old_bundle`` (a directory or its ``.tar.gz``) into
    that build's bundle.

    Raises:
        BadInputError: ``old_bundle`` is not a bundle (exit code 2); and whatever :func:`build` raises.
    """
    import tempfile

    from restnet_compile._util.atomic import write_atomic
    from restnet_compile.bundle.patch_make import make_patch as diff

    with bundle_dir(old_bundle) as old_root, tempfile.TemporaryDirectory(prefix="restnet-patch-") as tmp:
        old = open_bundle(old_root).manifest
        built = build(config, Path(tmp), progress, cache)
        data = diff(old_root, built.bundle_dir)
        size = sum(p.stat().st_size for p in built.bundle_dir.rglob("*") if p.is_file())
    write_atomic(out, data)
    before = {v.id for v in old.shipped()}
    added = [v.id for v in built.manifest.shipped() if v.id not in before]
    return PatchResult(out, len(data), size, added)


def apply_patch(bundle_dir: Path, patch: Path) -> Manifest:
    """Apply ``patch`` to the bundle ``bundle_dir`` all or nothing (see ``runtime.patch``); the new manifest.

    Raises:
        BadInputError: the patch is unreadable, truncated, altered or made for another bundle (exit code 2); the
            bundle on disk is untouched then.
    """
    from restnet_compile.runtime.patch import apply_patch as apply

    try:
        return apply(bundle_dir, patch)
    except BundleError as exc:
        raise BadInputError(str(exc)) from None


def firmware(
    bundle_dir: Path,
    tflm: Path | None,
    cpu: str,
    out: Path,
    kernels: str = "reference",
    run: bool = False,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
    samples: int | None = None,
) -> FirmwareResult:
    """Write and build the TensorFlow Lite Micro firmware project of a ``tflm-int8`` bundle in ``out``.

    ``tflm`` is a TFLite Micro source tree (None: ``$RESTNET_TFLM_DIR``); its static library is built once per
    (tree, CPU, kernels, compiler) into ``cache`` (None: ``$RESTNET_TFLM_CACHE``, else ``tflm/`` in the build cache
    folder) and reused. ``cpu`` is ``host`` (native ``g++``) or a Cortex-M (``arm-none-eabi-g++``, QEMU's MPS2/MPS3
    board). With ``run`` the firmware runs every shipped variant on the bundle's reference inputs (the first
    ``samples``; None: all), and the result
    holds each variant's outputs against the TFLite Micro Python interpreter and its measured arena; flash and RAM
    come from the linked ELF either way. ``out/firmware.json`` records it all.

    Raises:
        BadInputError: a bundle of another target, a folder that is not a TFLM tree, an unknown CPU or kernel set,
            a missing compiler or QEMU (the message names the Debian package), or ``out`` existing and not a
            firmware project (exit code 2).
        FirmwareBuildError: the library or the firmware did not compile (the compiler's first error), or the
            firmware failed when run (exit code 1).
        ParityError: with reference kernels, a variant's int8 outputs differ from the TFLite Micro Python
            interpreter's (exit code 4); ``out`` holds the firmware and its firmware.json.
    """
    import os

    from restnet_compile.firmware import TFLM_ENV, build_firmware

    if tflm is None and os.environ.get(TFLM_ENV):
        tflm = Path(os.environ[TFLM_ENV])
    return build_firmware(bundle_dir, tflm, cpu, out, kernels, run, cache, progress, samples)
