"""``api.analyze`` and ``restnet-compile analyze``: CKA matrix, candidates with FLOPs, cka.png, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.cost.flops import count_flops
from restnet_compile.models import create_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def _png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_api_analyze_cnn_pair(tmp_path: Path) -> None:
    result = api.analyze(BuildConfig(), tmp_path, samples=64)
    assert result.samples == 64
    assert len(result.cka) == 6 and all(len(r) == 4 for r in result.cka)
    assert result.large_blocks[0] == "L0 block0: map 32x28x28"
    assert result.rule.rule == "max-cka-per-cut-within-depth-band"
    assert result.rule.order == "large-small"
    assert result.candidates
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    lo, hi = count_flops(small, small.input_shape).total, count_flops(large, large.input_shape).total
    for c in result.candidates:
        assert c.cka == pytest.approx(result.cka[c.front_block][c.back_block], abs=1e-4)
        assert lo < c.flops < hi  # a large prefix is dearer than the small model's, cheaper than the whole large
    flops = [c.flops for c in result.candidates]
    assert flops == sorted(flops)  # deeper cuts keep more of the large model
    assert result.heatmap == tmp_path / "cka.png"
    _png(result.heatmap)


def test_api_analyze_transformer_to_cnn_without_writing() -> None:
    result = api.analyze(BuildConfig(large="demo-vit", small="demo-small-cnn"), None, samples=32)
    assert result.heatmap is None
    assert result.large_blocks[0].endswith("tokens 50x64")
    assert {c.adapter for c in result.candidates} == {"tokens-to-map-mlp"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "from restnet_compile.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_analyze_prints_matrix_candidates_and_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli(
        "analyze",
        "--large",
        "demo-large-cnn",
        "--small",
        "demo-vit",
        "--samples",
        "48",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "CKA (48 calibration images): rows = demo-large-cnn, columns = demo-vit"
    rows = [ln for ln in lines if ln.startswith("L") and ": map " in ln]
    assert len(rows) == 6
    assert all(len(r.split()[-4:]) == 4 for r in rows)
    assert any("map-to-tokens" in ln and "MFLOPs" in ln for ln in lines)
    _png(out / "cka.png")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--large", "demo-huge"], "unknown model 'demo-huge'; valid choices:"),
        (["--data", "npz:missing.npz"], "missing.npz does not exist"),
        (["--large", "resnet18"], "model resnet18: checkpoint"),
    ],
)
def test_cli_analyze_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, args: list, words: str) -> None:
    if "resnet18" in args:
        bad = tmp_path / "bad.pt"
        torch.save({"conv1.weight": torch.zeros(1)}, bad)
        args = [*args, "--large-weights", str(bad), "--input-shape", "3,32,32", "--num-classes", "10"]
    proc = _cli("analyze", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_analyze_models_with_different_inputs(tmp_path: Path) -> None:
    proc = _cli(
        "analyze",
        "--large",
        "resnet18",
        "--small",
        "demo-small-cnn",
        "--input-shape",
        "1,28,28",
        "--num-classes",
        "10",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    said = "model resnet18: block 0 (stem): takes RGB (3-channel) images but the build's input is 1x28x28"
    assert said in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_library_calls_restore_torch_process_state() -> None:
    """api.analyze (and api.build, through the same context) leaves threads, flags and the RNG as it found them."""
    import torch

    torch.manual_seed(123)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    api.analyze(BuildConfig(threads=1), None, samples=16)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
    assert torch.equal(torch.get_rng_state(), rng)
