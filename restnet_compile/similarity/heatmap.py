"""The CKA heatmap (``cka.png``): rows are the large model's blocks, columns the small model's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows, cols = cka.shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * cols, 1.2 + 0.55 * rows), dpi=110)
    try:
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
        ax.set_xlabel("small model block")
        ax.set_ylabel("large model block")
        ax.set_title(title + ("\nred boxes: stitch candidates" if marked else ""), fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.05)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
