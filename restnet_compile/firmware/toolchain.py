"""The tools a firmware build needs: a TensorFlow Lite Micro tree, a C++ compiler for the CPU, and QEMU to run it.

Each missing piece is bad input (exit code 2) with one line naming what to install or pass.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from restnet_compile.errors import BadInputError
from restnet_compile.firmware.cpus import Cpu

TFLM_ENV = "RESTNET_TFLM_DIR"
_MARKERS = ("tensorflow/lite/micro/tools/make/Makefile", "tensorflow/lite/micro/micro_interpreter.h")
# Where TFLM's Makefile puts its third-party trees; the firmware's sources include their headers too.
DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
_THIRD_PARTY_INCLUDES = ("flatbuffers/include", "gemmlowp", "ruy", "kissfft", "cmsis_nn", "cmsis_nn/Include")


@dataclass(frozen=True)
class Compiler:
    """The C/C++ compiler pair and binutils of one CPU."""

    cxx: str
    cc: str
    ar: str
    nm: str
    size: str
    version: str  # the first line of ``cxx --version``

    @property
    def root(self) -> str:
        """The folder holding the tools, with a trailing slash (TFLM's ``TARGET_TOOLCHAIN_ROOT``)."""
        return str(Path(self.cxx).parent) + "/"


def check_tflm_tree(tflm: Path | None) -> Path:
    """``tflm`` resolved, after checking it is a TensorFlow Lite Micro source tree.

    Raises:
        BadInputError: no folder given, the folder is missing, or it is not a TFLM tree (exit code 2).
    """
    if tflm is None:
        raise BadInputError(f"--tflm: give the TensorFlow Lite Micro source folder (or set ${TFLM_ENV})")
    root = Path(tflm).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"--tflm {tflm}: no such folder; give a TensorFlow Lite Micro source tree")
    missing = [m for m in _MARKERS if not (root / m).is_file()]
    if missing:
        raise BadInputError(f"--tflm {tflm}: not a TensorFlow Lite Micro source tree (no {missing[0]})")
    return root


def include_dirs(tflm: Path) -> list[Path]:
    """The include folders of TFLM and its third-party trees, as TFLM's own Makefile passes them."""
    downloads = tflm / DOWNLOADS
    return [
        tflm,
        downloads,
        *(downloads / d for d in _THIRD_PARTY_INCLUDES),
        downloads / "cmsis",
        downloads / "cmsis/CMSIS/Core/Include",
    ]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BadInputError(f"{name} is not on PATH: install the Debian package {package}")
    return path


def find_compiler(cpu: Cpu) -> Compiler:
    """The compiler for ``cpu``: the host's ``g++`` or ``arm-none-eabi-g++`` with newlib and libstdc++.

    Raises:
        BadInputError: a tool or library is missing; the message names the Debian package (exit code 2).
    """
    if cpu.is_host:
        cxx, cc = _tool("g++", "g++"), _tool("gcc", "gcc")
        ar, nm, size = _tool("ar", "binutils"), _tool("nm", "binutils"), _tool("size", "binutils")
    else:
        cxx, cc = _tool("arm-none-eabi-g++", "gcc-arm-none-eabi"), _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
        ar, nm = (
            _tool("arm-none-eabi-ar", "binutils-arm-none-eabi"),
            _tool("arm-none-eabi-nm", "binutils-arm-none-eabi"),
        )
        size = _tool("arm-none-eabi-size", "binutils-arm-none-eabi")
        for lib, package in (
            ("librdimon.a", "libnewlib-arm-none-eabi"),
            ("libstdc++.a", "libstdc++-arm-none-eabi-newlib"),
        ):
            found = subprocess.run([cxx, *cpu.flags, f"-print-file-name={lib}"], capture_output=True, text=True)
            if not Path(found.stdout.strip()).is_absolute():
                raise BadInputError(f"{lib} for {cpu.name} is missing: install the Debian package {package}")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return Compiler(cxx, cc, ar, nm, size, version)


def find_qemu(cpu: Cpu) -> str:
    """``qemu-system-arm`` for a Cortex-M run.

    Raises:
        BadInputError: QEMU is missing (exit code 2).
    """
    return _tool("qemu-system-arm", "qemu-system-arm")
