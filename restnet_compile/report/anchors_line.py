"""The anchors' line: test accuracy against FLOPs, piecewise linear through every anchor of a build.

A stitched variant is worth shipping beside its anchors when it lies above this line: more accurate than mixing the
two anchors around it in time would be at its cost. For each stitch the report gives the interval of anchors its
FLOPs fall in (``small-middle``) and its signed distance to the line there, in percentage points of test accuracy.
A stitch cheaper than the smallest anchor or dearer than the largest lies outside the line's span.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from restnet_compile.bundle.manifest import Manifest, VariantEntry


@dataclass(frozen=True)
class LinePoint:
    """One anchor on the line: its id, FLOPs (multiply-adds) and test accuracy (fp32, 0..1)."""

    id: str
    flops: int
    accuracy: float


@dataclass(frozen=True)
class Distance:
    """A stitch against the line: the interval its FLOPs fall in (None: outside the anchors' span) and its test
    accuracy minus the line's there (None outside the span), 0..1."""

    id: str
    flops: int
    accuracy: float
    interval: str | None
    above_by: float | None


def _is_anchor(v: VariantEntry) -> bool:
    return v.kind.startswith("anchor-")


def anchors_line(manifest: Manifest) -> list[LinePoint]:
    """The line's points: every anchor of ``manifest`` by increasing FLOPs (ties: by accuracy)."""
    points = [LinePoint(v.id, v.flops, v.accuracy_fp32) for v in manifest.variants if _is_anchor(v)]
    return sorted(points, key=lambda p: (p.flops, p.accuracy))


def line_at(line: list[LinePoint], flops: int) -> tuple[str, float] | None:
    """(interval name, the line's accuracy) at ``flops``; None outside ``[first, last]`` anchor's FLOPs."""
    for a, b in itertools.pairwise(line):
        if a.flops <= flops <= b.flops:
            t = 0.0 if b.flops == a.flops else (flops - a.flops) / (b.flops - a.flops)
            return f"{a.id}-{b.id}", a.accuracy + t * (b.accuracy - a.accuracy)
    return None


def distances(manifest: Manifest) -> list[Distance]:
    """Every stitched variant of ``manifest`` against the anchors' line, in manifest order."""
    line = anchors_line(manifest)
    out = []
    for v in manifest.variants:
        if _is_anchor(v) or v.kind != "stitched":
            continue
        at = line_at(line, v.flops)
        interval, above = (None, None) if at is None else (at[0], v.accuracy_fp32 - at[1])
        out.append(Distance(v.id, v.flops, v.accuracy_fp32, interval, above))
    return out


def above_per_interval(manifest: Manifest) -> dict[str, int]:
    """Interval name -> how many stitches lie strictly above the line in it (every interval, 0 where none does)."""
    line = anchors_line(manifest)
    counts = {f"{a.id}-{b.id}": 0 for a, b in itertools.pairwise(line)}
    for d in distances(manifest):
        if d.interval is not None and d.above_by is not None and d.above_by > 0:
            counts[d.interval] += 1
    return counts


def line_section(manifest: Manifest) -> list[str]:
    """The report's section: the anchors, then each stitch's interval and distance to the line."""
    line = anchors_line(manifest)
    points = ", ".join(f"`{p.id}` {p.flops / 1e6:.2f} MFLOPs {p.accuracy:.1%}" for p in line)
    rows = ["| variant | MFLOPs | test acc | interval | vs the anchors' line |", "|---|---|---|---|---|"]
    for d in distances(manifest):
        where = d.interval or "outside the anchors' span"
        delta = "-" if d.above_by is None else f"{100 * d.above_by:+.1f} pp"
        rows.append(f"| {d.id} | {d.flops / 1e6:.2f} | {d.accuracy:.1%} | {where} | {delta} |")
    counts = above_per_interval(manifest)
    summary = "; ".join(f"{name}: {n} above" for name, n in counts.items())
    return [
        "## Stitches against the anchors' line",
        "",
        f"The anchors' line runs through every anchor's test accuracy against its FLOPs: {points}. "
        "A stitch above it is more accurate than the anchors around it at its cost.",
        "",
        *rows,
        "",
        f"Stitches strictly above the line per interval: {summary}.",
        "",
    ]
