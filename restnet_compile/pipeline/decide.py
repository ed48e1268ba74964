"""Stage 6: which variants fit the profile and which of those ship (the Pareto front, thinned by the epsilon rule)."""

from __future__ import annotations

import dataclasses

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile
from restnet_compile.pipeline.state import Variant
from restnet_compile.selection.rule import Option, select


def decide(variants: list[Variant], profile: Profile, config: BuildConfig, val_samples: int) -> list[Variant]:
    """``variants`` with a feasibility / Pareto decision each (``val_samples``: size of the validation split).

    Raises:
        InfeasibleError: no variant fits the profile (the message names the closest miss).
    """
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
        for v in variants
    ]
    decisions = select(options, profile, config.selection == "pareto", config.selection_noise)
    return [dataclasses.replace(v, decision=d) for v, d in zip(variants, decisions, strict=True)]
