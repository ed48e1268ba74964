"""``api.analyze``: CKA matrix, candidates with FLOPs, the cka.png heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.cost.flops import count_flops
from restnet_compile.models import create_model
from restnet_compile.similarity.heatmap import write_cka_heatmap


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


def test_heatmap_marks_candidates(tmp_path: Path) -> None:
    cka = np.linspace(0, 1, 12).reshape(3, 4)
    plain = _png(write_cka_heatmap(cka, tmp_path / "a.png", ["L0", "L1", "L2"], ["S0", "S1", "S2", "S3"]))
    marked = _png(write_cka_heatmap(cka, tmp_path / "b.png", ["L0", "L1", "L2"], ["S0", "S1", "S2", "S3"], [(1, 2)]))
    assert plain.shape[0] > 100 and plain.shape[1] > 100

    def red(img: np.ndarray) -> int:
        return int(((img[..., 0] > 0.9) & (img[..., 1] < 0.2) & (img[..., 2] < 0.2)).sum())

    assert red(plain) == 0
    assert red(marked) > 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary files left


def test_api_analyze_cnn_pair(tmp_path: Path) -> None:
    result = api.analyze(BuildConfig(), tmp_path, samples=64)
    assert result.samples == 64
    assert len(result.cka) == 6 and all(len(r) == 4 for r in result.cka)
    assert result.large_blocks[0] == "L0 block0: map 32x28x28"
    assert result.rule["rule"] == "max-cka-per-cut-within-depth-band"
    assert result.rule["order"] == "large-small"
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
