"""Build the generated project with make, run it natively or under QEMU, and read back what it printed."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restnet_compile.firmware.compile_errors import FirmwareBuildError, first_error
from restnet_compile.firmware.cpus import Cpu
from restnet_compile.firmware.project import ELF
from restnet_compile.firmware.toolchain import find_qemu

RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class DeviceRun:
    """What one firmware run printed, per variant: its int8 outputs and the largest arena a segment used."""

    outputs: dict[str, np.ndarray]  # variant -> int8 [N, outputs]
    arena_used_bytes: dict[str, int]
    selected: list[tuple[int, float, str]]  # (RAM budget, latency budget, chosen variant)
    seconds: float


def make(project: Path, jobs: int = 2) -> None:
    """``make`` in ``project``.

    Raises:
        FirmwareBuildError: a compile or link failed; the message is the compiler's first error (exit code 1).
    """
    run = subprocess.run(["make", f"-j{jobs}"], cwd=project, capture_output=True, text=True)
    if run.returncode != 0:
        raise FirmwareBuildError(f"firmware build failed: {first_error(run.stdout + run.stderr)}")


def run_command(cpu: Cpu, elf: Path) -> list[str]:
    """How ``elf`` runs: natively, or on the CPU's QEMU board with semihosting."""
    if cpu.is_host:
        return [str(elf)]
    qemu = find_qemu(cpu)
    return [qemu, "-M", cpu.machine, "-nographic", "-semihosting", "-monitor", "none", "-serial", "none",
            "-kernel", str(elf)]  # fmt: skip


def run_firmware(cpu: Cpu, project: Path, timeout_s: float = RUN_TIMEOUT_S) -> DeviceRun:
    """Run the project's firmware and parse its ``restnet:`` lines.

    Raises:
        FirmwareBuildError: the firmware did not finish, reported a failed variant, or printed no result.
    """
    import time

    start = time.perf_counter()
    try:
        run = subprocess.run(
            run_command(cpu, project / ELF), cwd=project, capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FirmwareBuildError(f"the firmware did not finish within {timeout_s:.0f} s on {cpu.name}") from None
    seconds = time.perf_counter() - start
    parsed = parse_output(run.stdout)
    if run.returncode != 0 or parsed is None:
        fails = [line for line in run.stdout.splitlines() if "fail" in line or "fault" in line]
        why = fails[0] if fails else first_error(run.stdout + run.stderr)
        raise FirmwareBuildError(f"the firmware failed on {cpu.name} (exit {run.returncode}): {why}")
    outputs, arena, selected = parsed
    return DeviceRun(outputs, arena, selected, seconds)


def parse_output(text: str) -> tuple[dict[str, np.ndarray], dict[str, int], list[tuple[int, float, str]]] | None:
    """Outputs, arenas and selections from the firmware's lines; None unless it printed ``restnet: end 0``."""
    rows: dict[str, list[list[int]]] = {}
    arena: dict[str, int] = {}
    selected: list[tuple[int, float, str]] = []
    ended = False
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[0] != "restnet:":
            continue
        kind = parts[1]
        if kind == "out":
            rows.setdefault(parts[2], []).append([int(x) for x in parts[4:]])
        elif kind == "arena":
            arena[parts[2]] = int(parts[3])
        elif kind == "select":
            selected.append((int(parts[2]), float(parts[3]), parts[4]))
        elif kind == "end":
            ended = parts[2] == "0"
    if not ended:
        return None
    return {k: np.array(v, dtype=np.int8) for k, v in rows.items()}, arena, selected
