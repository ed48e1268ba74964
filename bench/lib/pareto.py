"""The anchors' line and the Pareto front of (FLOPs down, accuracy up), with the reason each point is dropped.

Used by the benchmarks to count variants that earn their place; the build's own selection
(``restnet_compile/selection/rule.py``) applies the same dominance rule with estimated latency in place of FLOPs.
"""

from __future__ import annotations


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
    out: dict[str, str | None] = {}
    for name, (f, a) in points.items():
        out[name] = None
        for other, (fo, ao) in sorted(everyone.items(), key=lambda kv: kv[1][0]):
            if other != name and fo <= f and ao >= a and (fo < f or ao > a):
                out[name] = dominated_reason(name, (f, a), other, (fo, ao))
                break
    return out
