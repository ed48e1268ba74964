"""The CLI front door: help, version, the profile and target listings, and bad build input failing fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from restnet_compile.config.device import builtin_text
from tests.unit.conftest import CliCall


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run("-m", "restnet_compile", *args, cwd=cwd)


def test_help_lists_exit_codes() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "Exit codes" in proc.stdout
    for verb in ("build", "profiles", "targets"):
        assert verb in proc.stdout


def test_version() -> None:
    proc = _cli("--version")
    assert proc.returncode == 0
    assert "0.1.0" in proc.stdout


def test_profiles_lists_builtins() -> None:
    proc = _cli("profiles")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == ["host", "jetson", "mcu", "phone"]
    mcu = next(line for line in proc.stdout.splitlines() if line.startswith("mcu"))
    assert "512.0 KiB" in mcu
    assert "90 ms" in mcu


def test_profiles_show_prints_the_yaml() -> None:
    proc = _cli("profiles", "show", "mcu")
    assert proc.returncode == 0
    assert proc.stdout == builtin_text("profiles", "mcu")


def test_targets_lists_builtins() -> None:
    proc = _cli("targets")
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "onnx-fp16",
        "onnx-fp32",
        "onnx-int8",
        "tflite-fp16",
        "tflite-fp32",
        "tflite-int8",
        "tflite-int8-segments",
        "tflm-int8",
    ]


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_profiles_show_unknown_name() -> None:
    proc = _cli("profiles", "show", "nope")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "valid choices" in line
    assert "'nope'" in line
    assert proc.stdout == ""


def test_build_unknown_profile_creates_nothing(tmp_path: Path, cli_in_process: CliCall) -> None:
    out = tmp_path / "dist"
    proc = cli_in_process("build", "--profile", "nope", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "valid choices" in _one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_build_profile_with_unknown_field(tmp_path: Path, cli_in_process: CliCall) -> None:
    profile = tmp_path / "mine.yaml"
    profile.write_text(builtin_text("profiles", "mcu") + "colour: red\n")
    out = tmp_path / "dist"
    proc = cli_in_process("build", "--profile", str(profile), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "'colour'" in _one_error_line(proc)
    assert not out.exists()


def test_build_fp32_target_on_int8_only_profile(tmp_path: Path, cli_in_process: CliCall) -> None:
    out = tmp_path / "dist"
    proc = cli_in_process("build", "--profile", "mcu", "--target", "onnx-fp32", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "onnx-fp32" in line and "int8" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["build", "--profile", "mcu", "--target", "nope"], "valid choices"),
        (["build", "--bogus-option"], "bogus-option"),
    ],
)
def test_build_other_bad_input_exits_2(tmp_path: Path, args: list[str], needle: str, cli_in_process: CliCall) -> None:
    out = tmp_path / "dist"
    proc = cli_in_process(*args, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "npz:missing.npz"], "missing.npz does not exist"),
        (["--large-weights", "missing.pt"], "missing.pt"),
        (["--large", "resnet18", "--input-shape", "3,32"], "expected C,H,W"),
    ],
)
def test_build_takes_the_model_and_data_options_of_analyze(
    tmp_path: Path, args: list[str], needle: str, cli_in_process: CliCall
) -> None:
    """``build`` shares analyze's option group: the options reach the config and bad values are one line, exit 2."""
    proc = cli_in_process("build", *args, "--out", str(tmp_path / "o"), "--no-cache", "-q", cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert not (tmp_path / "o").exists()
