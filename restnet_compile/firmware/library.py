"""The TensorFlow Lite Micro static library, built once per (TFLM tree, CPU, kernels, compiler) into a cache folder.

TFLM's own Makefile builds it (target ``microlite``) with its output folder moved into the cache
(``BASE_GENDIR``), the compiler found on PATH (``TARGET_TOOLCHAIN_ROOT``: its Makefile would otherwise download
one) and the CPU's flags; nothing is written into the TFLM tree and nothing is downloaded. A cache entry is the
library and ``build.json``; it is written to a temporary folder and renamed into place, so an interrupted build
leaves nothing a later one would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def cache_key(tflm_hash: str, cpu: Cpu, kernels: str, compiler: Compiler) -> str:
    """The cache entry's name: what the library depends on, hashed."""
    parts = {"recipe": RECIPE, "tflm": tflm_hash, "cpu": cpu.name, "flags": list(cpu.flags), "kernels": kernels}
    digest = hashlib.sha256(json.dumps({**parts, "compiler": compiler.version}, sort_keys=True).encode()).hexdigest()
    return f"{cpu.name}-{kernels}-{digest[:16]}"


def _jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def build_library(tflm: Path, cpu: Cpu, kernels: str, compiler: Compiler, cache_dir: Path | None = None) -> TflmLibrary:
    """The TFLM library for ``cpu`` and ``kernels``: from the cache, else built there now.

    Raises:
        FirmwareBuildError: TFLM's Makefile failed; the message holds the compiler's first error (exit code 1).
    """
    cache = (cache_dir or default_cache_dir()).expanduser().resolve()
    key = cache_key(tree_hash(tflm), cpu, kernels, compiler)
    entry = cache / key
    if (entry / LIB_NAME).is_file():
        return TflmLibrary(entry / LIB_NAME, key, True, 0.0, library_defines(kernels))
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
    try:
        seconds = _run_make(tflm, cpu, kernels, compiler, staging)
        (staging / "build.json").write_text(
            json.dumps({"cpu": cpu.name, "kernels": kernels, "compiler": compiler.version, "seconds": round(seconds, 1),
                        "make": make_args(cpu, kernels, compiler, Path("gen"), 1)}, indent=2) + "\n"
        )  # fmt: skip
        shutil.rmtree(staging / "gen")
        try:
            staging.rename(entry)
        except OSError:  # another build of the same key finished first: use that one
            if not (entry / LIB_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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


def _run_make(tflm: Path, cpu: Cpu, kernels: str, compiler: Compiler, staging: Path) -> float:
    if not cpu.is_host:
        _link_toolchain(tflm, compiler)
    log = staging / "make.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    with log.open("w") as out:  # the venv's python3 first: TFLM's Makefile runs python3 scripts that need Pillow
        run = subprocess.run(
            make_args(cpu, kernels, compiler, staging / "gen", _jobs()), cwd=tflm, env=env, stdout=out, stderr=out
        )
    seconds = time.perf_counter() - start
    libs = sorted((staging / "gen").glob(f"*/lib/{LIB_NAME}"))
    if run.returncode != 0 or not libs:
        raise FirmwareBuildError(
            f"TFLite Micro library for {cpu.name} ({kernels}) failed: {first_error(log.read_text())}"
        )
    shutil.copy2(libs[0], staging / LIB_NAME)
    return seconds
