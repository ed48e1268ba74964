"""Stage 3: the stitch candidates the rule picks from the CKA matrix, in the configured stitch order."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from restnet_compile.bundle.manifest import CandidateRule
from restnet_compile.config.build import CANDIDATE_RULE, BuildConfig, PlanSettings
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.state import Plan
from restnet_compile.stitching import plan_candidates, rejections


def candidate_rule(settings: PlanSettings) -> CandidateRule:
    """The stitch-candidate rule of ``settings`` as the manifest and an analysis record it."""
    return CandidateRule(
        rule=CANDIDATE_RULE,
        depth_band=settings.depth_band,
        min_suffix_blocks=settings.min_suffix_blocks,
        max_candidates=settings.max_candidates,
        order=settings.order,
    )


def plan(
    config: BuildConfig,
    cka: np.ndarray[Any, Any],
    large: BlockSequence,
    small: BlockSequence,
    allowed: Collection[tuple[int, int]] | None = None,
    misses: Mapping[tuple[int, int], str] | None = None,
    tags: tuple[str, str] = ("L", "S"),
) -> Plan:
    """The rule, the candidates and the (front, back) models in the configured stitch order.

    ``allowed``: the (front cut, back block) pairs the device can run (see :mod:`.screen`); None allows all.
    ``misses``: the limits each pair the device cannot run misses, for the lines that say why there is no candidate.
    ``tags``: the letters of ``large`` and ``small`` in variant ids (a family's pair: its anchors' letters).
    """
    rule = config.plan
    front, back, matrix = (small, large, cka.T) if rule.order == "small-large" else (large, small, cka)
    ordered = (tags[1], tags[0]) if rule.order == "small-large" else tags
    specs_f, specs_b = front.feature_specs(), back.feature_specs()
    candidates = plan_candidates(matrix, specs_f, specs_b, rule, allowed, ordered)
    rejected = () if candidates else tuple(rejections(specs_f, specs_b, rule, misses, ordered))
    return Plan(rule, candidates, front, back, rejected)
