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

    A variant dropped for its parity (``parity_failure``) is left out of the selection and keeps that reason.

    Raises:
        InfeasibleError: no other variant fits the profile (the message names the closest miss).
    """
    live = [v for v in variants if v.unusable is None and v.parity_failure is None]
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
        for v in live
    ]
    decisions = select(options, profile, config.selection == "pareto", config.selection_noise)
    decided = {d.variant_id: d for d in decisions}
    return [dataclasses.replace(v, decision=decided.get(v.id) or _left_out(v)) for v in variants]


def _left_out(v: Variant) -> Decision:
    """The decision of a variant kept out of the selection: infeasible when unusable, feasible when dropped for
    parity."""
    if v.unusable is not None:
        return Decision(v.id, False, False, (v.unusable,))
    return Decision(v.id, True, False, (v.parity_failure or "",))
