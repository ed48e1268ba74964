"""Stage 6: which variants fit the profile and which of those ship (the Pareto front, thinned by the epsilon rule)."""

from __future__ import annotations

import dataclasses

from restnet_compile.config.device import Profile
from restnet_compile.pipeline.state import Variant
from restnet_compile.selection.rule import Candidate, select


def decide(variants: list[Variant], profile: Profile, pareto: bool = True) -> list[Variant]:
    """``variants`` with a feasibility / Pareto decision each.

    Raises:
        InfeasibleError: no variant fits the profile (the message names the closest miss).
    """
    options = [
        Candidate(
            v.id,
            v.cost.latency_ms,
            v.cost.ram_bytes,
            v.cost.flash_bytes,
            v.val_accuracy,
            v.cost.flops,
            dtype=v.cost.dtype,
            ops=v.cost.ops,
            arena_bytes=v.cost.arena_bytes,
        )
        for v in variants
    ]
    return [dataclasses.replace(v, decision=d) for v, d in zip(variants, select(options, profile, pareto), strict=True)]
