"""``pareto.png``: accuracy against estimated latency and against FLOPs, with the profile's limit drawn.

The points are the validation accuracy the selection decided on, with one binomial standard error as error bars;
the test accuracy of each variant is drawn beside it as a grey dash (reported only, not used to decide). A family's
FLOPs panel also draws the anchors' line through its anchors' test accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from restnet_compile.bundle.manifest import Manifest, VariantEntry
from restnet_compile.report.anchors_line import anchors_line
from restnet_compile.report.markdown import standard_error

_STYLE = {  # marker, face colour, label
    "shipped": ("o", "tab:green", "ships"),
    "dominated": ("o", "none", "feasible, dominated"),
    "infeasible": ("x", "tab:red", "over a limit"),
}


@dataclass(frozen=True)
class PlotPoint:
    """One variant as plotted: status, the two x positions and the accuracies in percent."""

    id: str
    status: str
    latency_ms: float
    mflops: float
    val_pct: float
    val_se_pct: float
    test_pct: float


def _status(v: VariantEntry) -> str:
    if v.selected:
        return "shipped"
    return "dominated" if v.feasible else "infeasible"


def plot_points(manifest: Manifest) -> list[PlotPoint]:
    """Every variant's point: validation accuracy (what the selection used) ± one standard error, and test accuracy."""
    n_val = manifest.data.val
    return [
        PlotPoint(
            id=v.id,
            status=_status(v),
            latency_ms=v.latency_ms,
            mflops=v.flops / 1e6,
            val_pct=100 * v.val_accuracy_fp32,
            val_se_pct=100 * standard_error(v.val_accuracy_fp32, n_val),
            test_pct=100 * v.accuracy_fp32,
        )
        for v in manifest.variants
    ]


def write_pareto_plot(manifest: Manifest, path: Path) -> Path:
    """Two panels (latency, FLOPs) of validation accuracy ± SE and test accuracy per variant; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = plot_points(manifest)
    p = manifest.profile
    budget = p.latency_budget_ms
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
    try:
        for ax, key, label in ((axes[0], "latency_ms", "estimated latency (ms)"), (axes[1], "mflops", "MFLOPs")):
            for status, (marker, face, text) in _STYLE.items():
                pts = [q for q in points if q.status == status]
                if not pts:
                    continue
                edge = "tab:green" if face == "none" else face
                ax.errorbar(
                    [getattr(q, key) for q in pts],
                    [q.val_pct for q in pts],
                    yerr=[q.val_se_pct for q in pts],
                    fmt=marker,
                    markerfacecolor=face,
                    markeredgecolor=edge,
                    ecolor=edge,
                    elinewidth=1,
                    capsize=2,
                    markersize=7,
                    label=text,
                )
            ax.scatter(
                [getattr(q, key) for q in points],
                [q.test_pct for q in points],
                marker="_",
                color="0.45",
                s=80,
                label="test accuracy (not used to decide)",
            )
            for q in points:
                ax.annotate(q.id, (getattr(q, key), q.val_pct), fontsize=7, xytext=(4, 3), textcoords="offset points")
            front = sorted((q for q in points if q.status == "shipped"), key=lambda q: getattr(q, key))
            ax.plot(
                [getattr(q, key) for q in front],
                [q.val_pct for q in front],
                color="tab:green",
                linewidth=1,
                alpha=0.6,
            )
            if key == "mflops" and manifest.models.anchors:
                line = anchors_line(manifest)
                ax.plot(
                    [q.flops / 1e6 for q in line],
                    [100 * q.accuracy for q in line],
                    color="0.45",
                    linestyle=":",
                    linewidth=1,
                    label="anchors' line (test accuracy)",
                )
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        axes[0].axvline(
            budget, color="tab:red", linestyle="--", linewidth=1, label=f"budget p{p.latency_percentile} {budget:g} ms"
        )
        axes[0].set_ylabel("fp32 accuracy (%): validation points, test dashes")
        axes[0].legend(fontsize=7, loc="lower right")
        if manifest.models.anchors:
            axes[1].legend(handles=axes[1].get_lines()[-1:], fontsize=7, loc="lower right")
        fig.suptitle(
            f"profile {p.name}: the selection's validation accuracy (bars: ±1 standard error, "
            f"n = {manifest.data.val}) against the latency budget",
            fontsize=9,
        )
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
