"""The CKA heatmap: candidates marked in red, written without temporary files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restnet_compile.similarity.heatmap import write_cka_heatmap


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
