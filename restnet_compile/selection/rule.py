"""Feasibility against a device profile and the Pareto front of accuracy vs latency.

A variant is feasible when its estimated latency (at the profile's percentile), RAM, flash, the TFLite Micro arena
(MCU profiles with an ``arena``), its dtype and its operators (where the profile lists ``ops_allow``; known once
the variant is exported) are within the profile's limits. That the target's dtype is one the profile runs is also
checked once per build, in ``api.resolve``. Among feasible variants only the Pareto front of (validation accuracy
up, estimated latency down) is shipped; every other variant carries the reason it was dropped.

The profile thins that front with an epsilon-Pareto rule (``selection.min_latency_gain``, epsilon): walking the front
from the most accurate variant down, a variant ships only when its latency is at least epsilon below that of the last
variant shipped (the next more accurate one). A step smaller than that is inside what the device's latency can tell
apart, so it buys accuracy loss for no real saving. The most accurate feasible variant always ships; epsilon 0 ships
the whole front.
"""

from __future__ import annotations

from dataclasses import dataclass

from restnet_compile._util.units import format_size
from restnet_compile.config.device import Profile
from restnet_compile.errors import InfeasibleError


@dataclass(frozen=True)
class Candidate:
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


@dataclass(frozen=True)
class Decision:
    """Whether a variant ships, and why not when it does not."""

    variant_id: str
    feasible: bool
    selected: bool
    reasons: tuple[str, ...]


def limit_violations(c: Candidate, profile: Profile) -> list[str]:
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


def misses(c: Candidate, profile: Profile) -> dict[str, float]:
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


def describe_misses(c: Candidate, profile: Profile) -> str:
    """``latency p90 103.47 ms > 90 ms (+15%); RAM ...`` for every limit ``c`` misses."""
    over = misses(c, profile)
    parts = []
    for reason in limit_violations(c, profile):
        key = reason.split()[0]
        pct = over.get(key)
        parts.append(reason + (f" (+{pct:.0%})" if pct is not None and pct != float("inf") else ""))
    return "; ".join(parts)


def _dominator(c: Candidate, others: list[Candidate]) -> Candidate | None:
    for o in others:
        if o.variant_id == c.variant_id:
            continue
        no_worse = o.latency_ms <= c.latency_ms and o.val_accuracy >= c.val_accuracy
        better = o.latency_ms < c.latency_ms or o.val_accuracy > c.val_accuracy
        if no_worse and better:
            return o
    return None


def thin_front(front: list[Candidate], min_gain: float) -> dict[str, str]:
    """The epsilon-Pareto rule: why each variant of ``front`` too close in latency to a more accurate one is dropped.

    Args:
        front: Mutually non-dominated candidates.
        min_gain: Least fraction of latency a less accurate variant must save against the next more accurate
            shipped one (epsilon).

    Returns:
        Variant id -> reason, for the dropped variants only.
    """
    dropped: dict[str, str] = {}
    kept: Candidate | None = None
    for c in sorted(front, key=lambda c: (-c.val_accuracy, c.latency_ms, c.variant_id)):
        if kept is None:
            kept = c
            continue
        gain = 1 - c.latency_ms / kept.latency_ms if kept.latency_ms > 0 else 0.0
        if gain >= min_gain - 1e-9:  # a step of exactly epsilon ships (float noise aside)
            kept = c
            continue
        dropped[c.variant_id] = (
            f"within {gain:.1%} of {kept.variant_id}'s latency ({c.latency_ms:.2f} vs {kept.latency_ms:.2f} ms) "
            f"at lower accuracy ({c.val_accuracy:.1%} vs {kept.val_accuracy:.1%} val); "
            f"this profile ships a step from {min_gain:.0%}"
        )
    return dropped


def describe_rule(profile: Profile, mode: str) -> str:
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
    return f"variants with {limits}, on the Pareto front of validation accuracy vs latency{thin}"


def select(candidates: list[Candidate], profile: Profile, pareto: bool = True) -> list[Decision]:
    """Decide for every candidate; raise when nothing fits.

    Args:
        candidates: Every built variant.
        profile: The device's limits and its selection rule (``selection.min_latency_gain``).
        pareto: Ship only the (epsilon-thinned) Pareto front of the feasible variants (else every feasible one).

    Raises:
        InfeasibleError: no candidate fits; the message names the closest one and how far it misses.
    """
    if not candidates:
        raise InfeasibleError(f"no variants to select from for profile {profile.name}")
    violations = {c.variant_id: limit_violations(c, profile) for c in candidates}
    feasible = [c for c in candidates if not violations[c.variant_id]]
    if not feasible:
        closest = min(candidates, key=lambda c: _miss_ratio(c, profile))
        raise InfeasibleError(
            f"no variant fits profile {profile.name}; closest is {closest.variant_id}: "
            + describe_misses(closest, profile)
        )
    dominators = {c.variant_id: _dominator(c, feasible) if pareto else None for c in feasible}
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
            decisions.append(Decision(c.variant_id, True, False, (reason,)))
        elif c.variant_id in thinned:
            decisions.append(Decision(c.variant_id, True, False, (thinned[c.variant_id],)))
        else:
            decisions.append(Decision(c.variant_id, True, True, ()))
    return decisions


def _miss_ratio(c: Candidate, profile: Profile) -> tuple[int, float]:
    """Hard misses (dtype, ops) first, then the worst ratio of cost to limit."""
    over = misses(c, profile)
    hard = sum(1 for v in over.values() if v == float("inf"))
    ratios = [c.latency_ms / profile.latency.budget, c.ram_bytes / profile.ram, c.flash_bytes / profile.flash]
    if profile.arena is not None and c.arena_bytes is not None:
        ratios.append(c.arena_bytes / profile.arena)
    return hard, max(ratios)
