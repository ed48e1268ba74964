"""The CKA heatmap (``cka.png``): rows are the large model's blocks, columns the small model's; a family's has one
panel per pair of anchors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.atomic import atomic_path


def write_cka_heatmap(
    cka: np.ndarray,
    path: Path,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    marked: Sequence[tuple[int, int]] = (),
    title: str = "linear CKA",
) -> Path:
    """Draw ``cka`` with its values, outline the ``marked`` (row, column) cells and write a PNG atomically.

    Args:
        cka: ``rows x columns`` similarities.
        path: Where the PNG goes (written through a temporary file, so a failure leaves nothing behind).
        row_labels: One label per row (large-model block).
        col_labels: One label per column (small-model block).
        marked: Cells to outline, such as the chosen stitch candidates.
        title: Figure title.
    """
    axes = ("small model block", "large model block")
    return write_cka_heatmaps([Panel(cka, row_labels, col_labels, marked, title, axes)], path)


@dataclass(frozen=True)
class Panel:
    """One pair's CKA matrix as :func:`write_cka_heatmaps` draws it (see :func:`write_cka_heatmap` for the fields);
    ``axes``: the (columns, rows) axis titles."""

    cka: np.ndarray
    row_labels: Sequence[str]
    col_labels: Sequence[str]
    marked: Sequence[tuple[int, int]]
    title: str
    axes: tuple[str, str]


def write_cka_heatmaps(panels: Sequence[Panel], path: Path) -> Path:
    """Draw several CKA matrices side by side (a family's pairs) and write one PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = sum(1.6 + 0.9 * p.cka.shape[1] for p in panels)
    height = max(1.2 + 0.55 * p.cka.shape[0] for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, height), dpi=110, squeeze=False)
    try:
        for ax, p in zip(axes[0], panels, strict=True):
            _draw(fig, ax, p.cka, p.row_labels, p.col_labels, p.marked, p.title, p.axes)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def _draw(
    fig: Any,
    ax: Any,
    cka: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    marked: Sequence[tuple[int, int]],
    title: str,
    axes: tuple[str, str],
) -> None:
    from matplotlib.patches import Rectangle

    rows, cols = cka.shape
    im = ax.imshow(cka, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for i in range(rows):
        for j in range(cols):
            ax.text(
                j,
                i,
                f"{cka[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if cka[i, j] > 0.6 else "white",
            )
    for i, j in marked:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(cols), list(col_labels), rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(rows), list(row_labels), fontsize=7)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title + ("\nred boxes: stitch candidates" if marked else ""), fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05)
