"""Stage 3: the stitch candidates the rule picks from the CKA matrix, in the configured stitch order."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from restnet_compile.config.build import BuildConfig, PlanSettings
from restnet_compile.models import BlockSequence
from restnet_compile.stitching import Candidate, plan_candidates


@dataclass(frozen=True)
class Plan:
    """The candidate rule, its candidates, and which model gives the prefix (front) and which the suffix (back)."""

    rule: PlanSettings
    candidates: list[Candidate]
    front: BlockSequence
    back: BlockSequence


def plan(
    config: BuildConfig,
    cka: np.ndarray,
    large: BlockSequence,
    small: BlockSequence,
    allowed: Collection[tuple[int, int]] | None = None,
) -> Plan:
    """The rule, the candidates and the (front, back) models in the configured stitch order.

    ``allowed``: the (front cut, back block) pairs the device can run (see :mod:`.screen`); None allows all.
    """
    rule = config.plan
    front, back, matrix = (small, large, cka.T) if rule.order == "small-large" else (large, small, cka)
    return Plan(rule, plan_candidates(matrix, front.feature_specs(), back.feature_specs(), rule, allowed), front, back)
