"""The TensorFlow Lite Micro static library, built once per (TFLM tree, CPU, kernels, compiler, operator kernels)
into a cache folder.

TFLM's own Makefile builds it, with its output folder moved into the cache (``BASE_GENDIR``), the compiler found on
PATH (``TARGET_TOOLCHAIN_ROOT``) and the CPU's flags; nothing is downloaded. The objects are those of its
``microlite`` library (its dry run lists them, with its own flags and its CMSIS-NN substitutions) less the kernel
files that register only operators outside the ``tflm-int8`` target's list (and the bundle's): every interpreter,
helper and third-party file stays. For the pinned TFLM tree that is 144 of 202 objects with reference kernels and
257 of 315 with CMSIS-NN; every bundle of that target shares one library. A cache entry is the
library and ``build.json``; it is built in a folder of its own (an interrupted build resumes there, under a lock)
and renamed into place when complete, so nothing half-built is ever taken for a library.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from restnet_compile.firmware.compile_errors import FirmwareBuildError, first_error
from restnet_compile.firmware.cpus import Cpu
from restnet_compile.firmware.toolchain import DOWNLOADS, Compiler

CACHE_ENV = "RESTNET_TFLM_CACHE"
LIB_NAME = "libtensorflow-microlite.a"
RECIPE = 1  # bump when the make command below changes what it builds
_HASHED = ("tensorflow", "signal", "third_party")
_SKIPPED = ("gen", "gcc_embedded", "__pycache__", ".git")


@dataclass(frozen=True)
class TflmLibrary:
    """A built TFLM library and what it was built from."""

    path: Path
    key: str
    reused: bool
    seconds: float  # build time (0 when reused)
    defines: tuple[str, ...]  # preprocessor flags the firmware's sources must share with the library


def default_cache_dir() -> Path:
    """``$RESTNET_TFLM_CACHE``, else ``tflm/`` in ``$RESTNET_COMPILE_CACHE``, ``$XDG_CACHE_HOME/restnet-compile`` or
    ``~/.cache/restnet-compile``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("RESTNET_COMPILE_CACHE")
    if base:
        return Path(base).expanduser() / "tflm"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return root / "restnet-compile" / "tflm"


def tree_hash(tflm: Path) -> str:
    """sha256 of every source file of the TFLM tree (paths and bytes; build outputs and git data left out)."""
    h = hashlib.sha256()
    for top in _HASHED:
        for dirpath, dirnames, filenames in os.walk(tflm / top):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                h.update(str(path.relative_to(tflm)).encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def library_defines(kernels: str) -> tuple[str, ...]:
    """Flags that change types or kernel choice in TFLM's headers: the firmware compiles with the same."""
    defines = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON")
    return (*defines, "-DCMSIS_NN") if kernels == "cmsis-nn" else defines


def make_args(cpu: Cpu, kernels: str, compiler: Compiler, gendir: Path, jobs: int) -> list[str]:
    """TFLM's ``make ... microlite`` command for ``cpu`` and ``kernels``, its output under ``gendir``."""
    args = [
        "make", "-f", "tensorflow/lite/micro/tools/make/Makefile", f"-j{jobs}", f"BASE_GENDIR={gendir}",
        "DOWNLOAD_RESULT=SUCCESS",  # every third-party tree is in place: never run a download script
    ]  # fmt: skip
    if not cpu.is_host:
        platform = ["-DTF_LITE_MCU_DEBUG_LOG", "-funsigned-char", "-fomit-frame-pointer", *cpu.flags]
        args += [
            "TARGET=cortex_m_qemu", f"TARGET_ARCH={cpu.name}", f"TARGET_TOOLCHAIN_ROOT={compiler.root}",
            f"PLATFORM_FLAGS={' '.join(platform)}",
        ]  # fmt: skip
    if kernels == "cmsis-nn":
        args.append("OPTIMIZED_KERNEL_DIR=cmsis_nn")
    return [*args, "microlite"]


def cache_key(tflm_hash: str, cpu: Cpu, kernels: str, compiler: Compiler, ops: tuple[str, ...]) -> str:
    """The cache entry's name: what the library depends on, hashed."""
    parts = {
        "recipe": RECIPE, "tflm": tflm_hash, "cpu": cpu.name, "flags": list(cpu.flags), "kernels": kernels,
        "registrations": sorted(ops),
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps({**parts, "compiler": compiler.version}, sort_keys=True).encode()).hexdigest()
    return f"{cpu.name}-{kernels}-{digest[:16]}"


def _jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def build_library(
    tflm: Path,
    cpu: Cpu,
    kernels: str,
    compiler: Compiler,
    ops: tuple[str, ...],
    cache_dir: Path | None = None,
) -> TflmLibrary:
    """The TFLM library for ``cpu`` and ``kernels`` with the kernels of ``ops`` (``Register_CONV_2D``...): from the
    cache, else built there now.

    Raises:
        FirmwareBuildError: TFLM's Makefile failed; the message holds the compiler's first error (exit code 1).
    """
    cache = (cache_dir or default_cache_dir()).expanduser().resolve()
    key = cache_key(tree_hash(tflm), cpu, kernels, compiler, ops)
    entry = cache / key
    if (entry / LIB_NAME).is_file():
        return TflmLibrary(entry / LIB_NAME, key, True, 0.0, library_defines(kernels))
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{key}.build"
    with (cache / f".{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per key; a second process waits, then finds the entry
        if (entry / LIB_NAME).is_file():
            return TflmLibrary(entry / LIB_NAME, key, True, 0.0, library_defines(kernels))
        staging.mkdir(exist_ok=True)
        seconds, objects = _run_make(tflm, cpu, kernels, compiler, ops, staging)
        (staging / "build.json").write_text(
            json.dumps({"cpu": cpu.name, "kernels": kernels, "compiler": compiler.version, "seconds": round(seconds, 1),
                        "objects": objects, "registrations": sorted(ops),
                        "make": make_args(cpu, kernels, compiler, Path("gen"), 1)}, indent=2) + "\n"
        )  # fmt: skip
        shutil.rmtree(staging / "gen")
        (staging / "make.log").unlink(missing_ok=True)
        staging.rename(entry)
    return TflmLibrary(entry / LIB_NAME, key, False, seconds, library_defines(kernels))


def _link_toolchain(tflm: Path, compiler: Compiler) -> None:
    """Point TFLM's ``downloads/gcc_embedded`` at the compiler's installation, as TFLM's README suggests: its Cortex-M
    makefiles run a script that downloads a GCC there unless the folder exists. Left alone when present; an
    unwritable tree only means the script tries (and, offline, fails) before the build goes on with our compiler."""
    link = tflm / DOWNLOADS / "gcc_embedded"
    if link.exists() or link.is_symlink():
        return
    with contextlib.suppress(OSError):
        link.symlink_to(Path(compiler.root).parent, target_is_directory=True)


_COMPILE = re.compile(r" -c (\S+) -o (\S+\.o)\b")
_REGISTERS = re.compile(r"^TFLMRegistration\s+(Register_\w+)\(\)\s*\{", re.MULTILINE)


def _library_objects(tflm: Path, args: list[str], env: dict[str, str], ops: tuple[str, ...]) -> list[str]:
    """The objects of TFLM's ``microlite`` (from its dry run) less kernel files that register none of ``ops``."""
    # -B: every command, also for objects a resumed build already has (a plain dry run lists only stale ones)
    dry = subprocess.run([*args[:-1], "-n", "-B", args[-1]], cwd=tflm, env=env, capture_output=True, text=True)
    if dry.returncode != 0:
        raise FirmwareBuildError(f"TFLite Micro's Makefile failed: {first_error(dry.stdout + dry.stderr)}")
    needed = set(ops)
    objects = []
    for src, obj in _COMPILE.findall(dry.stdout):
        if "/micro/kernels/" in f"/{src}":
            defined = set(_REGISTERS.findall((tflm / src).read_text(errors="replace")))
            if defined and not defined & needed:
                continue
        objects.append(obj)
    if not objects:
        raise FirmwareBuildError("TFLite Micro's Makefile lists no library sources")
    return objects


def _run_make(
    tflm: Path, cpu: Cpu, kernels: str, compiler: Compiler, ops: tuple[str, ...], staging: Path
) -> tuple[float, int]:
    if not cpu.is_host:
        _link_toolchain(tflm, compiler)
    log = staging / "make.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    args = make_args(cpu, kernels, compiler, staging / "gen", _jobs())
    start = time.perf_counter()
    objects = _library_objects(tflm, args, env, ops)
    with log.open("w") as out:  # the venv's python3 first: TFLM's Makefile runs python3 scripts that need Pillow
        code = subprocess.run([*args[:-1], *objects], cwd=tflm, env=env, stdout=out, stderr=out).returncode
    if code == 0:
        lib = staging / LIB_NAME
        lib.unlink(missing_ok=True)
        ar = subprocess.run([compiler.ar, "rcs", str(lib), *objects], cwd=tflm, capture_output=True, text=True)
        log.write_text(log.read_text() + ar.stdout + ar.stderr)
        code = ar.returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise FirmwareBuildError(
            f"TFLite Micro library for {cpu.name} ({kernels}) failed: {first_error(log.read_text())}"
        )
    return seconds, len(objects)
