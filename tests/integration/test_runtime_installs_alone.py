"""The device runtime installs alone: a fresh virtual environment with the package and no extras verifies and runs
a bundle built by this tier (and its archive), without torch, TensorFlow or onnx2tf, lists the built-in profiles and
targets, and a compiler verb names the extra it needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restnet_compile import api
from restnet_compile.runtime import Bundle
from restnet_compile.runtime.inputs import load_image

ROOT = Path(__file__).resolve().parents[2]
TOOLCHAIN = {"torch", "tensorflow", "onnx2tf", "onnx", "pydantic"}
MAX_ENV_MB = 300  # the runtime is numpy + LiteRT; torch or TensorFlow alone would be several times this


def _env(venv: Path) -> dict[str, str]:
    """The caller's environment minus anything that would let the venv see this checkout or the build venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A venv holding ``pip install restnet-compile`` (no extras), installed from a copy of this checkout."""
    work = tmp_path_factory.mktemp("runtime-alone")
    src = work / "src"
    shutil.copytree(ROOT / "restnet_compile", src / "restnet_compile", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = work / "venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    install = [*pip, "install", "--quiet", str(src)]
    proc = subprocess.run(install, env=_env(venv), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run([*pip, "list", "--format=json"], env=_env(venv), capture_output=True, text=True)
    return {
        "venv": venv,
        "cwd": work,
        "packages": {p["name"].lower() for p in json.loads(listed.stdout)},
        "seconds": time.perf_counter() - start,
        "mb": _size_mb(venv),
    }


def _in(light: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=light["cwd"], env=_env(light["venv"]), capture_output=True, text=True, timeout=300
    )


def test_the_plain_install_has_no_toolchain(light: dict) -> None:
    assert "restnet-compile" in light["packages"] and "ai-edge-litert" in light["packages"]
    assert not light["packages"] & TOOLCHAIN, light["packages"] & TOOLCHAIN
    assert light["mb"] < MAX_ENV_MB, f"{light['mb']:.0f} MB"
    print(f"runtime-only venv: {light['mb']:.0f} MB, created and installed in {light['seconds']:.1f} s")


def test_installed_cli_verifies_and_runs_a_bundle(light: dict, phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    root = phone_bundle.bundle_dir
    proc = _in(light, "restnet-compile", "verify", str(root))
    assert proc.returncode == 0, proc.stderr
    shipped = [v.id for v in phone_bundle.manifest.variants if v.selected]
    assert f"verified {len(shipped)} variants" in proc.stdout
    _, h, w = phone_bundle.manifest.input.shape
    pixels = np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8)
    png = tmp_path / "in.png"
    Image.fromarray(pixels, mode="L").save(png)
    proc = _in(light, "restnet-compile", "run", str(root), "--input", str(png), "--variant", shipped[-1], "--json")
    assert proc.returncode == 0, proc.stderr
    here = Bundle.open(root).run(load_image(png, phone_bundle.manifest.input)[None], shipped[-1])[0]
    assert json.loads(proc.stdout)["label"] == int(np.argmax(here))


def test_python_api_opens_selects_and_runs_without_the_toolchain(light: dict, phone_bundle: api.BuildResult) -> None:
    script = (
        "import sys, numpy as np\n"
        "from restnet_compile.runtime import Bundle\n"
        f"b = Bundle.open({str(phone_bundle.bundle_dir)!r})\n"
        "v = b.select(latency_ms=1e9)\n"
        "y = b.run(np.full((2, *b.manifest.input.shape), 0.5, np.float32), v.id)\n"
        f"print(v.id, y.shape[0], sorted(set({sorted(TOOLCHAIN)!r}) & {{m.split('.')[0] for m in sys.modules}}))\n"
    )
    proc = _in(light, str(light["venv"] / "bin" / "python"), "-c", script)
    assert proc.returncode == 0, proc.stderr
    expected = Bundle.open(phone_bundle.bundle_dir).select(latency_ms=1e9).id
    assert proc.stdout.split() == [expected, "2", "[]"]


@pytest.mark.parametrize("verb", [["build"], ["analyze"]])
def test_a_compiler_verb_prints_one_line_naming_the_extra(light: dict, verb: list[str]) -> None:
    out = light["cwd"] / "never-written"
    proc = _in(light, "restnet-compile", *verb, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("pip install 'restnet-compile[compile]'"), proc.stderr
    assert proc.stdout == "" and not out.exists()


@pytest.mark.parametrize("verb", [["profiles"], ["targets"], ["profiles", "show", "mcu"]])
def test_the_listing_verbs_work_without_the_compile_extra(light: dict, verb: list[str]) -> None:
    proc = _in(light, "restnet-compile", *verb)
    here = subprocess.run(
        [sys.executable, "-m", "restnet_compile", *verb], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == here.stdout and len(proc.stdout.splitlines()) > 3


def test_inspect_and_verify_read_the_archive(light: dict, phone_bundle: api.BuildResult) -> None:
    proc = _in(light, "restnet-compile", "verify", str(phone_bundle.archive))
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
