"""Stage 6: which variants fit the profile and which of those ship (the Pareto front, thinned by the epsilon rule)."""

from __future__ import annotations

import dataclasses

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile
from restnet_compile.pipeline.state import Variant
from restnet_compile.selection.rule import Decision, Option, select


def decide(variants: list[Variant], profile: Profile, config: BuildConfig, val_samples: int) -> list[Variant]:
    """``variants`` with a feasibility / Pareto decision each (``val_samples``: size of the validation split); an
    unusable variant is infeasible with its reason and takes no part in the selection.

    Raises:
        InfeasibleError: no variant fits the profile (the message names the closest miss).
    """
    usable = [v for v in variants if v.unusable is None]
    options = [
        Option(
            v.id,
            v.cost.latency_ms,
            v.cost.ram_bytes,
            v.cost.flash_bytes,
            v.val_accuracy,
            v.cost.flops,
            dtype=v.cost.dtype,
            ops=v.cost.ops,
            arena_bytes=v.cost.arena_bytes,
            val_samples=val_samples,
        )
        for v in usable
    ]
    decisions = select(options, profile, config.selection == "pareto", config.selection_noise)
    decided = {v.id: d for v, d in zip(usable, decisions, strict=True)}
    return [
        dataclasses.replace(v, decision=decided.get(v.id) or Decision(v.id, False, False, (v.unusable or "",)))
        for v in variants
    ]
