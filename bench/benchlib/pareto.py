"""The anchors' line and the Pareto front of (FLOPs down, accuracy up), with the reason each point is dropped.

Used by the benchmarks to count variants that earn their place, through the build's own dominance rule
(:func:`restnet_compile.selection.rule.dominator`, without a noise margin) with FLOPs in place of latency.
"""

from __future__ import annotations

from restnet_compile.selection.rule import Option, dominator


def anchor_line(anchors: dict[str, dict[str, float]], flops: float, key: str = "test_accuracy") -> float:
    """Accuracy of the straight line from the small to the large anchor in (FLOPs, ``key``) at ``flops``."""
    fs, fl = anchors["small"]["flops"], anchors["large"]["flops"]
    a_s, a_l = anchors["small"][key], anchors["large"][key]
    return a_s + (a_l - a_s) * (flops - fs) / (fl - fs)


def dominated_reason(name: str, point: tuple[float, float], by: str, other: tuple[float, float]) -> str:
    """``dominated by small: 0.92 MFLOPs at 97.1 % vs 8.23 MFLOPs at 94.7 %`` (the dominator first)."""
    return (
        f"dominated by {by}: {other[0] / 1e6:.2f} MFLOPs at {other[1]:.1%} vs "
        f"{point[0] / 1e6:.2f} MFLOPs at {point[1]:.1%}"
    ).replace("%", " %")


def pareto_reasons(
    anchors: dict[str, dict[str, float]], points: dict[str, tuple[float, float]], key: str = "val_accuracy"
) -> dict[str, str | None]:
    """For each of ``points`` (id -> (FLOPs, accuracy)): None when on the front with the anchors, else why not."""
    everyone = {**{r: (a["flops"], a[key]) for r, a in anchors.items()}, **points}
    options = {
        n: Option(n, latency_ms=f, ram_bytes=0, flash_bytes=0, val_accuracy=a, flops=int(f))
        for n, (f, a) in everyone.items()
    }
    by_flops = sorted(options.values(), key=lambda o: o.latency_ms)  # the dominator named is the one of fewest FLOPs
    out: dict[str, str | None] = {}
    for name, (f, a) in points.items():
        dom = dominator(options[name], by_flops, 0.0)
        out[name] = dominated_reason(name, (f, a), dom.variant_id, everyone[dom.variant_id]) if dom else None
    return out
