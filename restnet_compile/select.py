"""Feasibility against a device profile and the Pareto front of accuracy vs latency.

A variant is feasible when its estimated latency (at the profile's percentile), RAM, flash, the TFLite Micro arena
(MCU profiles with an ``arena``), its dtype and its operators (where the profile lists ``ops_allow``; known once
the variant is exported) are within the profile's limits. That the target's dtype is one the profile runs is also
checked once per build, in ``api.resolve``. Among feasible variants only the Pareto front of (validation accuracy
up, estimated latency down) is shipped; every other variant carries the reason it was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from restnet_compile.config import Profile
from restnet_compile.errors import InfeasibleError
from restnet_compile.units import format_size


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


def select(candidates: list[Candidate], profile: Profile, pareto: bool = True) -> list[Decision]:
    """Decide for every candidate; raise when nothing fits.

    Args:
        candidates: Every built variant.
        profile: The device's limits.
        pareto: Ship only the Pareto front of the feasible variants (else every feasible variant).

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
    decisions = []
    for c in candidates:
        if violations[c.variant_id]:
            decisions.append(Decision(c.variant_id, False, False, tuple(violations[c.variant_id])))
            continue
        dom = _dominator(c, feasible) if pareto else None
        reason = (
            ()
            if dom is None
            else (
                f"dominated by {dom.variant_id}: {dom.latency_ms:.2f} ms, {dom.flops / 1e6:.2f} MFLOPs at "
                f"{dom.val_accuracy:.1%} val vs {c.latency_ms:.2f} ms, {c.flops / 1e6:.2f} MFLOPs at "
                f"{c.val_accuracy:.1%} val",
            )
        )
        decisions.append(Decision(c.variant_id, True, dom is None, reason))
    return decisions


def _miss_ratio(c: Candidate, profile: Profile) -> tuple[int, float]:
    """Hard misses (dtype, ops) first, then the worst ratio of cost to limit."""
    over = misses(c, profile)
    hard = sum(1 for v in over.values() if v == float("inf"))
    ratios = [c.latency_ms / profile.latency.budget, c.ram_bytes / profile.ram, c.flash_bytes / profile.flash]
    if profile.arena is not None and c.arena_bytes is not None:
        ratios.append(c.arena_bytes / profile.arena)
    return hard, max(ratios)
