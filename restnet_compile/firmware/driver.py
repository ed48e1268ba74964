"""One firmware: check the inputs, write the project, build TFLM (or reuse it) and the firmware, run it, measure.

Everything is written to a staging folder beside the output folder and renamed into place at the end, so a failed
build leaves the output folder as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from restnet_compile._util.atomic import replace_dir
from restnet_compile.bundle.manifest import MANIFEST, REFERENCE_FILE, BundleError, Manifest, read_manifest
from restnet_compile.errors import BadInputError, ParityError
from restnet_compile.firmware.arena import variant_arenas
from restnet_compile.firmware.cpus import cpu_by_name
from restnet_compile.firmware.execute import DeviceRun, make, run_firmware
from restnet_compile.firmware.library import build_library
from restnet_compile.firmware.opset import bundle_ops, library_ops, registrations, resolver_methods
from restnet_compile.firmware.project import ELF, PROJECT_FILE, ProjectSpec, reference_inputs, write_project
from restnet_compile.firmware.sizes import map_sizes
from restnet_compile.firmware.tflm_python import tflm_outputs
from restnet_compile.firmware.toolchain import check_tflm_tree, find_compiler, find_qemu
from restnet_compile.runtime import Bundle
from restnet_compile.runtime.chain import dequantize

FIRMWARE_JSON = "firmware.json"
FORMAT_VERSION = 1
STACK_BYTES = 64 << 10  # reserved by board.ld on Cortex-M


@dataclass(frozen=True)
class VariantResult:
    """One variant as the firmware ran it, beside its references."""

    id: str
    bit_exact: bool  # int8 outputs equal the TFLite Micro Python interpreter's on every reference input
    max_int8_diff: int  # largest difference from that interpreter, in int8 steps
    top1_agreement: float  # with that interpreter
    max_abs_diff_deployed: float  # dequantized outputs against reference.npz's deployed_<id> (LiteRT, at build time)
    arena_used_bytes: int  # the largest arena a segment used, as TFLite Micro reported it on the device
    arena_bytes_estimate: int  # the estimate of that arena for this CPU (firmware.arena; boundary buffer not included)
    boundary_bytes: int  # the buffer that carries a tensor between two segments


@dataclass(frozen=True)
class FirmwareResult:
    """A built (and possibly run) firmware project."""

    out_dir: Path
    elf: Path
    cpu: str
    kernels: str
    library: Path
    library_reused: bool
    library_seconds: float
    build_seconds: float  # the whole call up to a runnable ELF, library included
    flash: dict[str, int]
    ram: dict[str, int]
    bundle_model_bytes: int
    variants: tuple[VariantResult, ...] | None  # None unless run
    run_seconds: float | None


def _open_bundle(bundle: Path) -> Manifest:
    """The bundle's manifest, after checking its target (first, so a bundle of another target is named as such) and
    then every file against its checksum."""
    try:
        target = read_manifest((bundle / MANIFEST).read_bytes(), f"{bundle}/{MANIFEST}").target
        if target.format != "tflm":
            raise BadInputError(
                f"bundle {bundle} is for target {target.name} ({target.format}); firmware needs a TensorFlow Lite "
                "Micro bundle (target tflm-int8, e.g. build --profile mcu)"
            )
        manifest = Bundle.open(bundle).manifest
    except OSError as exc:
        raise BadInputError(f"bundle {bundle}: cannot read {MANIFEST} ({exc.strerror})") from None
    except BundleError as exc:
        raise BadInputError(str(exc)) from None
    if not (bundle / "model_data.cc").is_file() or not (bundle / REFERENCE_FILE).is_file():
        raise BadInputError(f"bundle {bundle} has no model_data.cc or {REFERENCE_FILE}")
    return manifest


def _check_out(out: Path) -> None:
    if out.exists() and not (out / PROJECT_FILE).is_file():
        raise BadInputError(f"--out {out} exists and is not a firmware project; give a new folder or a previous one")


def _boundary_bytes(manifest: Manifest, vid: str) -> int:
    """The buffer that carries ``vid``'s tensors between segments: its largest inner boundary tensor, 16-byte aligned
    (as ``model_data.cc``'s variant table has it)."""
    chain = manifest.chain(vid)
    largest = max((int(np.prod(s.output.shape)) for s in chain[:-1]), default=0)
    return -(-largest // 16) * 16


def compare(
    bundle: Path, manifest: Manifest, device: DeviceRun, arenas: dict[str, int], samples: int | None = None
) -> tuple[VariantResult, ...]:
    """Every variant's device outputs against the TFLM Python interpreter and reference.npz, and its measured arena
    against ``arenas`` (the estimate for the CPU it ran on)."""
    expected = tflm_outputs(bundle, manifest, reference_inputs(bundle, manifest, samples))
    results = []
    with np.load(bundle / REFERENCE_FILE) as ref:
        for v in manifest.shipped():
            got, want = device.outputs.get(v.id), expected[v.id]
            if got is None or got.shape != want.shape:
                raise ParityError(f"variant {v.id}: the firmware printed no outputs of shape {want.shape}")
            last = manifest.chain(v.id)[-1].output
            deployed = ref[f"deployed_{v.id}"][: len(got)].reshape(len(got), -1)
            floats = dequantize(got, last)
            results.append(
                VariantResult(
                    id=v.id,
                    bit_exact=bool(np.array_equal(got, want)),
                    max_int8_diff=int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max()),
                    top1_agreement=float(np.mean(got.argmax(axis=1) == want.argmax(axis=1))),
                    max_abs_diff_deployed=float(np.abs(floats - deployed).max()),
                    arena_used_bytes=device.arena_used_bytes[v.id],
                    arena_bytes_estimate=arenas[v.id],
                    boundary_bytes=_boundary_bytes(manifest, v.id),
                )
            )
    return tuple(results)


def build_firmware(
    bundle: Path,
    tflm: Path | None,
    cpu_name: str,
    out: Path,
    kernels: str = "reference",
    run: bool = False,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    samples: int | None = None,
) -> FirmwareResult:
    """Write, build and (with ``run``) run the firmware project of ``bundle`` in ``out``; the main runs the first
    ``samples`` reference inputs (None: all).

    Raises:
        BadInputError: a bad bundle, TFLM tree, CPU, kernel set or output folder, or a missing tool (exit code 2).
        FirmwareBuildError: the library or the firmware did not build, or the firmware failed (exit code 1).
        ParityError: with reference kernels, an output differs from TFLite Micro's Python interpreter (exit code 4);
            firmware.json is written first.
    """
    say = progress or (lambda _: None)
    cpu = cpu_by_name(cpu_name, kernels)
    root = check_tflm_tree(tflm)
    bundle = Path(bundle).resolve()
    manifest = _open_bundle(bundle)
    out = Path(out).resolve()
    _check_out(out)
    compiler = find_compiler(cpu)
    if run and not cpu.is_host:
        find_qemu(cpu)
    start = time.perf_counter()
    arenas = variant_arenas(bundle, manifest, cpu)
    ops = bundle_ops(bundle, manifest)
    methods = resolver_methods(root, ops)
    say(f"TFLite Micro library for {cpu.name} ({kernels} kernels)")
    kernel_set = registrations(root, resolver_methods(root, library_ops(ops), strict=False))
    lib = build_library(root, cpu, kernels, compiler, kernel_set, cache_dir)
    say(f"  {'reused' if lib.reused else f'built in {lib.seconds:.0f} s'}: {lib.path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        spec = ProjectSpec(
            bundle, manifest, cpu, kernels, root, lib.path, lib.defines, compiler, tuple(methods), arenas, samples
        )
        write_project(spec, staging)
        say(f"firmware project for {len(manifest.shipped())} variants: make")
        make(staging)
        build_seconds = time.perf_counter() - start
        flash, ram = _sizes(staging, cpu.is_host, compiler.nm)
        variants, run_seconds = None, None
        if run:
            say(f"running on {cpu.machine or 'the host'}")
            device = run_firmware(cpu, staging)
            variants, run_seconds = compare(bundle, manifest, device, arenas, samples), device.seconds
        result = FirmwareResult(
            out, out / ELF, cpu.name, kernels, lib.path, lib.reused, lib.seconds, build_seconds, flash, ram,
            int(manifest.bundle_model_bytes or 0), variants, run_seconds,
        )  # fmt: skip
        write_report(staging, result, device.outputs if run else None, manifest)
        replace_dir(staging, out, out.parent / f".{out.name}.old")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(out.parent / f".{out.name}.old", ignore_errors=True)
    _check_parity(result)
    return result


def _sizes(project: Path, host: bool, nm: str) -> tuple[dict[str, int], dict[str, int]]:
    flash, sections = map_sizes(project / "firmware.map")
    flash["total"] = sum(flash.values())
    ram = {"data": sections.get(".data", 0), "bss": sections.get(".bss", 0)}
    arena = _static_symbol_sizes(project, nm, ("g_arena", "g_boundary"))
    ram.update(arena=arena.get("g_arena", 0), boundary=arena.get("g_boundary", 0))
    ram["stack"] = 0 if host else STACK_BYTES
    ram["total"] = ram["data"] + ram["bss"] + ram["stack"]
    return flash, ram


def _static_symbol_sizes(project: Path, nm: str, names: tuple[str, ...]) -> dict[str, int]:
    """Sizes of the main's static buffers (in .bss), from the ELF's symbol table."""
    listing = subprocess.run([nm, "-S", "-C", str(project / ELF)], capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    for line in listing.splitlines():  # "ADDRESS SIZE TYPE NAME", NAME such as "(anonymous namespace)::g_arena"
        parts = line.split()
        if len(parts) >= 4 and parts[-1].split("::")[-1] in names:
            found[parts[-1].split("::")[-1]] = int(parts[1], 16)
    return found


def _check_parity(result: FirmwareResult) -> None:
    if result.kernels != "reference" or result.variants is None:
        return
    bad = [v for v in result.variants if not v.bit_exact]
    if bad:
        v = bad[0]
        raise ParityError(
            f"variant {v.id} on {result.cpu}: int8 outputs differ from TensorFlow Lite Micro's Python interpreter by "
            f"up to {v.max_int8_diff} (reference kernels must be bit-exact); see {result.out_dir / FIRMWARE_JSON}"
        )


def write_report(
    project: Path, result: FirmwareResult, outputs: dict[str, np.ndarray] | None, manifest: Manifest
) -> None:
    """``firmware.json``: what was built and, after a run, what the firmware measured."""
    variants = []
    for v in result.variants or ():
        last = manifest.chain(v.id)[-1].output
        floats = dequantize(outputs[v.id], last) if outputs is not None else None
        variants.append({**asdict(v), "outputs": floats.round(6).tolist() if floats is not None else None})
    data = {
        "format_version": FORMAT_VERSION,
        "cpu": result.cpu,
        "kernels": result.kernels,
        "elf": ELF,
        "tflm_library": str(result.library),
        "tflm_library_reused": result.library_reused,
        "flash": result.flash,
        "ram": result.ram,
        "bundle_model_bytes": result.bundle_model_bytes,
        "samples": len(next(iter(outputs.values()))) if outputs else None,
        "variants": variants if result.variants is not None else None,
    }
    (project / FIRMWARE_JSON).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
