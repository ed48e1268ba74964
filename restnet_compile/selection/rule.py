"""Feasibility against a device profile and the Pareto front of accuracy vs latency.

A variant is feasible when its estimated latency (at the profile's percentile), RAM, flash, the TFLite Micro arena
(MCU profiles with an ``arena``), its dtype and its operators (where the profile lists ``ops_allow``; known once
the variant is exported) are within the profile's limits. That the target's dtype is one the profile runs is also
checked once per build, in ``pipeline.driver.resolve``. Among feasible variants only the Pareto front of (validation
accuracy up, estimated latency down) is shipped; every other variant carries the reason it was dropped.

Validation accuracy is measured on a few hundred images, so two accuracies closer than its noise cannot be told
apart. A variant dropped as dominated on such a difference says so in its reason, with one standard error of the
difference, ``sqrt(p1 (1 - p1) / n + p2 (1 - p2) / n)`` on ``n`` validation images. With ``selection_noise`` of
``z > 0`` standard errors, a variant is dominated only by one that is at least as fast and more accurate by more
than ``z`` of them: nothing is dropped on noise, and everything within the noise of a faster variant ships (on the
demo, ``z = 1`` ships all seven variants, two of them below the anchors' line on test). ``z = 0``, the default, is
the exact Pareto front.

The profile thins that front with an epsilon-Pareto rule (``selection.min_latency_gain``, epsilon): walking the front
from the slowest variant to the fastest, a variant ships only when its latency is at least epsilon below that of the
last variant shipped. A step smaller than that is inside what the device's latency can tell apart: of the two, the
more accurate one (measured) ships. On an exact front the slowest variant is the most accurate, so the most accurate
feasible variant always ships; epsilon 0 ships the whole front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from restnet_compile._util.units import format_size
from restnet_compile.config.device import Profile
from restnet_compile.errors import InfeasibleError


@dataclass(frozen=True)
class Option:
    """What selection needs to know about a variant."""

    variant_id: str
    latency_ms: float
    ram_bytes: int
    flash_bytes: int
    val_accuracy: float
    flops: int
    dtype: str | None = None
    ops: tuple[str, ...] | None = None
    arena_bytes: int | None = None
    val_samples: int = 0


@dataclass(frozen=True)
class Decision:
    """Whether a variant ships, and why not when it does not."""

    variant_id: str
    feasible: bool
    selected: bool
    reasons: tuple[str, ...]


def limit_violations(c: Option, profile: Profile) -> list[str]:
    """Human-readable reasons ``c`` does not fit ``profile`` (empty when it fits)."""
    out = []
    if c.latency_ms > profile.latency.budget:
        out.append(f"latency p{profile.latency.percentile} {c.latency_ms:.2f} ms > {profile.latency.budget:g} ms")
    if c.ram_bytes > profile.ram:
        out.append(f"RAM {format_size(c.ram_bytes)} > {format_size(profile.ram)}")
    if profile.arena is not None and c.arena_bytes is not None and c.arena_bytes > profile.arena:
        out.append(f"arena {format_size(c.arena_bytes)} > {format_size(profile.arena)}")
    if c.flash_bytes > profile.flash:
        out.append(f"flash {format_size(c.flash_bytes)} > {format_size(profile.flash)}")
    if c.dtype is not None and c.dtype not in profile.dtypes:
        out.append(f"dtype {c.dtype} not in {'/'.join(profile.dtypes)}")
    if profile.ops_allow is not None and c.ops is not None:
        missing = sorted(set(c.ops) - set(profile.ops_allow))
        if missing:
            out.append(f"ops {', '.join(missing)} not supported by {profile.runtime}")
    return out


def misses(c: Option, profile: Profile) -> dict[str, float]:
    """How far ``c`` is over each limit it misses, as a fraction of the limit (0.15 = 15 % over)."""
    pairs = {
        "latency": (c.latency_ms, profile.latency.budget),
        "RAM": (c.ram_bytes, profile.ram),
        "flash": (c.flash_bytes, profile.flash),
    }
    if profile.arena is not None and c.arena_bytes is not None:
        pairs["arena"] = (c.arena_bytes, profile.arena)
    out = {k: v / lim - 1 for k, (v, lim) in pairs.items() if v > lim}
    if c.dtype is not None and c.dtype not in profile.dtypes:
        out["dtype"] = float("inf")
    if profile.ops_allow is not None and c.ops is not None and set(c.ops) - set(profile.ops_allow):
        out["ops"] = float("inf")
    return out


def describe_misses(c: Option, profile: Profile) -> str:
    """``latency p90 103.47 ms > 90 ms (+15%); RAM ...`` for every limit ``c`` misses."""
    over = misses(c, profile)
    parts = []
    for reason in limit_violations(c, profile):
        key = reason.split()[0]
        pct = over.get(key)
        parts.append(reason + (f" (+{pct:.0%})" if pct is not None and pct != float("inf") else ""))
    return "; ".join(parts)


def noise_margin(a: Option, b: Option, z: float) -> float:
    """``z`` standard errors of the difference of ``a``'s and ``b``'s validation accuracies (0 when unknown)."""
    n = min(a.val_samples, b.val_samples)
    if z <= 0 or n <= 0:
        return 0.0
    var = a.val_accuracy * (1 - a.val_accuracy) / n + b.val_accuracy * (1 - b.val_accuracy) / n
    return z * math.sqrt(var)


def dominator(c: Option, others: list[Option], z: float) -> Option | None:
    """The first of ``others`` that dominates ``c``: no slower and no less accurate (by ``z`` standard errors of
    validation noise, see :func:`noise_margin`), and faster or more accurate; None when none does."""
    for o in others:
        if o.variant_id == c.variant_id:
            continue
        margin = noise_margin(o, c, z)
        no_worse = o.latency_ms <= c.latency_ms and o.val_accuracy >= c.val_accuracy + margin
        better = o.latency_ms < c.latency_ms or o.val_accuracy > c.val_accuracy + margin
        if no_worse and better:
            return o
    return None


def thin_front(front: list[Option], min_gain: float) -> dict[str, str]:
    """The epsilon-Pareto rule: why each variant of ``front`` too close in latency to a more accurate one is dropped.

    Args:
        front: Mutually non-dominated candidates.
        min_gain: Least fraction of latency a less accurate variant must save against the next more accurate
            shipped one (epsilon).

    Returns:
        Variant id -> reason, for the dropped variants only.
    """
    dropped: dict[str, str] = {}
    kept: Option | None = None
    for c in sorted(front, key=lambda c: (-c.latency_ms, -c.val_accuracy, c.variant_id)):
        if kept is None:
            kept = c
            continue
        gain = 1 - c.latency_ms / kept.latency_ms if kept.latency_ms > 0 else 0.0
        if gain >= min_gain - 1e-9:  # a step of exactly epsilon ships (float noise aside)
            kept = c
            continue
        worse, better = (kept, c) if c.val_accuracy > kept.val_accuracy else (c, kept)
        dropped[worse.variant_id] = (
            f"within {gain:.1%} of {better.variant_id}'s latency ({worse.latency_ms:.2f} vs {better.latency_ms:.2f} "
            f"ms) at lower accuracy ({worse.val_accuracy:.1%} vs {better.val_accuracy:.1%} val); "
            f"this profile ships a step from {min_gain:.0%}"
        )
        kept = better
    return dropped


def describe_rule(profile: Profile, mode: str, noise_z: float = 0.0) -> str:
    """One sentence for the manifest and the report: how this build chose what ships."""
    limits = "latency, RAM, flash, arena, dtype and operators within the profile"
    if mode == "feasible":
        return f"every variant with {limits}"
    eps = profile.selection.min_latency_gain
    thin = (
        f", thinned so that each less accurate variant saves at least {eps:.0%} latency on the next more accurate "
        "one (epsilon-Pareto)"
        if eps > 0
        else ""
    )
    noise = (
        f" (an accuracy difference within {noise_z:g} standard error(s) of the validation split's noise does not "
        "dominate)"
        if noise_z > 0
        else ""
    )
    return f"variants with {limits}, on the Pareto front of validation accuracy vs latency{noise}{thin}"


def require_feasible(candidates: list[Option], profile: Profile) -> None:
    """Raise unless at least one of ``candidates`` fits ``profile``.

    Raises:
        InfeasibleError: none fits; the message names the closest one and how far it misses.
    """
    if not candidates:
        raise InfeasibleError(f"no variants to select from for profile {profile.name}")
    if any(not limit_violations(c, profile) for c in candidates):
        return
    closest = min(candidates, key=lambda c: _miss_ratio(c, profile))
    raise InfeasibleError(
        f"no variant fits profile {profile.name}; closest is {closest.variant_id}: " + describe_misses(closest, profile)
    )


def select(candidates: list[Option], profile: Profile, pareto: bool = True, noise_z: float = 0.0) -> list[Decision]:
    """Decide for every candidate; raise when nothing fits.

    Args:
        candidates: Every built variant.
        profile: The device's limits and its selection rule (``selection.min_latency_gain``).
        pareto: Ship only the (epsilon-thinned) Pareto front of the feasible variants (else every feasible one).
        noise_z: Standard errors of validation noise within which an accuracy difference does not dominate.

    Raises:
        InfeasibleError: no candidate fits; the message names the closest one and how far it misses.
    """
    require_feasible(candidates, profile)
    violations = {c.variant_id: limit_violations(c, profile) for c in candidates}
    feasible = [c for c in candidates if not violations[c.variant_id]]
    dominators = {c.variant_id: dominator(c, feasible, noise_z) if pareto else None for c in feasible}
    front = [c for c in feasible if dominators[c.variant_id] is None]
    thinned = thin_front(front, profile.selection.min_latency_gain) if pareto else {}
    decisions = []
    for c in candidates:
        if violations[c.variant_id]:
            decisions.append(Decision(c.variant_id, False, False, tuple(violations[c.variant_id])))
            continue
        dom = dominators[c.variant_id]
        if dom is not None:
            reason = (
                f"dominated by {dom.variant_id}: {dom.latency_ms:.2f} ms, {dom.flops / 1e6:.2f} MFLOPs at "
                f"{dom.val_accuracy:.1%} val vs {c.latency_ms:.2f} ms, {c.flops / 1e6:.2f} MFLOPs at "
                f"{c.val_accuracy:.1%} val"
            )
            one_se = noise_margin(dom, c, 1.0)
            if one_se and dom.val_accuracy - c.val_accuracy < one_se:
                reason += f" (an accuracy difference within the validation noise, 1 s.e. = {one_se:.1%})"
            decisions.append(Decision(c.variant_id, True, False, (reason,)))
        elif c.variant_id in thinned:
            decisions.append(Decision(c.variant_id, True, False, (thinned[c.variant_id],)))
        else:
            decisions.append(Decision(c.variant_id, True, True, ()))
    return decisions


def _miss_ratio(c: Option, profile: Profile) -> tuple[int, float]:
    """Hard misses (dtype, ops) first, then the worst ratio of cost to limit."""
    over = misses(c, profile)
    hard = sum(1 for v in over.values() if v == float("inf"))
    ratios = [c.latency_ms / profile.latency.budget, c.ram_bytes / profile.ram, c.flash_bytes / profile.flash]
    if profile.arena is not None and c.arena_bytes is not None:
        ratios.append(c.arena_bytes / profile.arena)
    return hard, max(ratios)
