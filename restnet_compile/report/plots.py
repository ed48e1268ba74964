"""``pareto.png``: accuracy against estimated latency and against FLOPs, with the profile's limit drawn."""

from __future__ import annotations

from pathlib import Path

from restnet_compile.bundle.manifest import Manifest, VariantEntry

_STYLE = {  # marker, face colour, label
    "shipped": ("o", "tab:green", "ships"),
    "dominated": ("o", "none", "feasible, dominated"),
    "infeasible": ("x", "tab:red", "over a limit"),
}


def _status(v: VariantEntry) -> str:
    if v.selected:
        return "shipped"
    return "dominated" if v.feasible else "infeasible"


def write_pareto_plot(manifest: Manifest, path: Path) -> Path:
    """Two panels (latency, FLOPs) of test accuracy per variant; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = manifest.variants
    budget = manifest.profile.latency_budget_ms
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
    try:
        for ax, key, label in ((axes[0], "latency_ms", "estimated latency (ms)"), (axes[1], "flops", "MFLOPs")):
            scale = 1e-6 if key == "flops" else 1.0
            for status, (marker, face, text) in _STYLE.items():
                pts = [v for v in variants if _status(v) == status]
                if not pts:
                    continue
                ax.scatter(
                    [getattr(v, key) * scale for v in pts],
                    [100 * v.accuracy_fp32 for v in pts],
                    marker=marker,
                    facecolors=face,
                    edgecolors="tab:green" if face == "none" else face,
                    s=50,
                    label=text,
                )
            for v in variants:
                ax.annotate(
                    v.id,
                    (getattr(v, key) * scale, 100 * v.accuracy_fp32),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
            front = sorted((v for v in variants if v.selected), key=lambda v: getattr(v, key))
            ax.plot(
                [getattr(v, key) * scale for v in front],
                [100 * v.accuracy_fp32 for v in front],
                color="tab:green",
                linewidth=1,
                alpha=0.6,
            )
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        p = manifest.profile
        axes[0].axvline(
            budget,
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"budget p{p.latency_percentile} {budget:g} ms",
        )
        axes[0].set_ylabel("test accuracy, fp32 (%)")
        axes[0].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"profile {p.name}: variants against the latency budget", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
