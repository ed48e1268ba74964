"""The CPUs a firmware is built for: compiler flags, the TFLite Micro make target, the QEMU board and its memory.

Cortex-M builds use hard-float code (the FPU each core has; MVE on the Cortex-M55) and newlib with semihosting
(``rdimon``), so one ELF prints and exits under ``qemu-system-arm`` and, with another startup file, runs on a board.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from restnet_compile.errors import BadInputError


@dataclass(frozen=True)
class Cpu:
    """One build target of the firmware."""

    name: str
    flags: tuple[str, ...]  # compiler flags for the CPU (host: none)
    machine: str = ""  # qemu-system-arm board ("" for the host)
    code: tuple[int, int] = (0, 0)  # (origin, bytes) of the vector table and code
    rom: tuple[int, int] | None = None  # read-only data and .data's load image (None: after the code)
    ram: tuple[int, int] = (0, 0)  # .data, .bss, heap and stack

    @property
    def is_host(self) -> bool:
        """Whether the firmware is a native program of this machine."""
        return not self.machine

    @property
    def pointer_bytes(self) -> int:
        """Width of a pointer in its code: TFLite Micro's bookkeeping structs are mostly pointers (Cortex-M: 4)."""
        return struct.calcsize("P") if self.is_host else 4


_COMMON_M = ("-mthumb", "-mfloat-abi=hard", "-mlittle-endian")

# Memory maps as QEMU 7.2 models the boards: MPS2 AN386/AN500 have 4 MB of SSRAM at 0 (code) and 4 MB at 0x20000000
# (data); MPS3 AN547 has 512 KB of ITCM at 0 (vector table and code) and 4 MB of SRAM at 0x21000000, half of it
# read-only data here and half RAM.
CPUS: dict[str, Cpu] = {
    "host": Cpu("host", ()),
    "cortex-m4": Cpu(
        "cortex-m4",
        ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", *_COMMON_M),
        "mps2-an386",
        (0, 4 << 20),
        None,
        (0x20000000, 4 << 20),
    ),
    "cortex-m7": Cpu(
        "cortex-m7",
        ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", *_COMMON_M),
        "mps2-an500",
        (0, 4 << 20),
        None,
        (0x20000000, 4 << 20),
    ),
    "cortex-m55": Cpu(
        "cortex-m55",
        ("-mcpu=cortex-m55", "-mfpu=auto", *_COMMON_M),
        "mps3-an547",
        (0, 512 << 10),
        (0x21000000, 2 << 20),
        (0x21200000, 2 << 20),
    ),
}

KERNELS = ("reference", "cmsis-nn")


def cpu_by_name(name: str, kernels: str = "reference") -> Cpu:
    """The CPU ``name``, checked against ``kernels``.

    Raises:
        BadInputError: an unknown CPU or kernel set, or CMSIS-NN asked for the host (exit code 2).
    """
    if name not in CPUS:
        raise BadInputError(f"--cpu {name!r} is not known; valid choices: {', '.join(CPUS)}")
    if kernels not in KERNELS:
        raise BadInputError(f"--kernels {kernels!r} is not known; valid choices: {', '.join(KERNELS)}")
    if kernels == "cmsis-nn" and name == "host":
        raise BadInputError("--kernels cmsis-nn needs a Cortex-M CPU; for --cpu host the valid choice is reference")
    return CPUS[name]
