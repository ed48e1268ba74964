"""Choosing stitch points from the CKA matrix.

The rule (recorded in every manifest): for each cut ``i`` of the front model (at least one block kept, not all), look
at the back model's blocks ``j`` that (a) leave at least ``min_suffix_blocks`` blocks after them, (b) lie within
``depth_band`` of the cut in relative depth, ``|(i+1)/n_front - (j+1)/n_back| <= depth_band``, and (c) have an output
that a registered adapter can produce from block ``i``'s output (same feature kind, compatible resolution). Among them
take the ``j`` with the highest CKA. Each cut yields at most one candidate, so candidates are distinct; if there are
more than ``max_candidates``, keep those with the highest CKA, then order by cut.

A build first costs every pair that (a)-(c) allow (:func:`stitch_pairs`) on its device profile, before any CKA or
tuning (``pipeline.screen``), and passes the pairs that profile can run as ``allowed``: (d) the plan picks among
those pairs only. A cut whose best pair the device cannot run then yields its best runnable pair instead of a
candidate that would be tuned only to be dropped, and when every pair is runnable the plan is the same as without
(d). A build for several profiles plans once per profile and tunes the union of their candidates. A plan that yields no
candidate says why (:func:`rejections`): one line per pair of blocks that (a) and (b) allow but (c) or (d) rejects
(the adapters' shape problem, or the profile's limits the stitch misses), and one line per cut that (a) and (b)
leave without any pair.

The front model is the large one by default (ReStNet: large prefix -> small suffix); with ``order="small-large"``
(SN-Net) the small model's prefix feeds the large model's suffix and the rule runs on the transposed matrix. The
adapter for each pair is the planned one (``adapters.adapter_for``: the registered adapter of lowest planning
priority that can join the pair; one per kind of join: map->map, tokens->tokens, map->tokens, tokens->map), so CNN
and transformer blocks are planned the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from restnet_compile.config.build import PlanSettings
from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters import adapter_for, why_no_adapter
from restnet_compile.stitching.net import StitchPoint


@dataclass(frozen=True)
class Candidate:
    """A proposed stitch with the evidence behind it."""

    point: StitchPoint
    adapter: str
    cka: float


def stitch_pairs(front: list[FeatureSpec], back: list[FeatureSpec], rule: PlanSettings) -> list[tuple[int, int, str]]:
    """Every (front cut ``i``, back block ``j``, planned adapter) that conditions (a)-(c) of the rule allow."""
    n_f, n_b = len(front), len(back)
    pairs = []
    for i in range(n_f - 1):
        for j in range(n_b - rule.min_suffix_blocks):
            if abs((i + 1) / n_f - (j + 1) / n_b) > rule.depth_band:
                continue
            adapter = adapter_for(front[i], back[j])
            if adapter is not None:
                pairs.append((i, j, adapter))
    return pairs


def plan_candidates(
    cka: np.ndarray,
    front: list[FeatureSpec],
    back: list[FeatureSpec],
    rule: PlanSettings,
    allowed: Collection[tuple[int, int]] | None = None,
    tags: tuple[str, str] | None = None,
) -> list[Candidate]:
    """Apply ``rule`` to the CKA matrix (rows: front blocks, columns: back blocks).

    Args:
        cka: ``len(front) x len(back)`` similarities (transpose the large x small matrix for ``small-large``).
        front: Output specs of the front model's blocks.
        back: Output specs of the back model's blocks.
        rule: The rule's parameters (``BuildConfig.plan``).
        allowed: The (front cut, back block) pairs the device can run (condition (d)); None allows every pair.
        tags: The (front, back) letters in variant ids; default ``L`` / ``S`` in the rule's order.
    """
    tags = tags or (("S", "L") if rule.order == "small-large" else ("L", "S"))
    best: dict[int, Candidate] = {}
    for i, j, adapter in stitch_pairs(front, back, rule):
        if allowed is not None and (i, j) not in allowed:
            continue
        if i not in best or cka[i, j] > best[i].cka:
            best[i] = Candidate(StitchPoint(i, j, *tags), adapter, float(cka[i, j]))
    kept = sorted(best.values(), key=lambda c: -c.cka)[: rule.max_candidates]
    return sorted(kept, key=lambda c: (c.point.front_block, c.point.back_block))


def rejections(
    front: list[FeatureSpec],
    back: list[FeatureSpec],
    rule: PlanSettings,
    unrunnable: Mapping[tuple[int, int], str] | None = None,
    tags: tuple[str, str] | None = None,
) -> list[str]:
    """Why the rule rejects each pair of blocks, one line each (``L2-S0: adapter ... cannot resize ...``).

    Args:
        front: Output specs of the front model's blocks.
        back: Output specs of the back model's blocks.
        rule: The rule's parameters.
        unrunnable: (front cut, back block) -> the profile's limits that stitch misses (condition (d)).
        tags: The (front, back) letters in variant ids; default ``L`` / ``S`` in the rule's order.
    """
    tf, tb = tags or (("S", "L") if rule.order == "small-large" else ("L", "S"))
    n_f, n_b = len(front), len(back)
    if n_f < 2:
        return [f"the prefix model has {n_f} block: no cut leaves a block for the suffix"]
    lines = []
    for i in range(n_f - 1):
        band = [j for j in range(n_b - rule.min_suffix_blocks) if abs((i + 1) / n_f - (j + 1) / n_b) <= rule.depth_band]
        if not band:
            lines.append(
                f"{tf}{i}: no {tb} block lies within depth band {rule.depth_band:g} and leaves "
                f"{rule.min_suffix_blocks} suffix block(s) after it"
            )
        for j in band:
            if adapter_for(front[i], back[j]) is None:
                lines.append(f"{tf}{i}-{tb}{j}: {why_no_adapter(front[i], back[j])}")
            elif unrunnable is not None and (i, j) in unrunnable:
                lines.append(f"{tf}{i}-{tb}{j}: does not fit the profile: {unrunnable[(i, j)]}")
    return lines
