"""The typed values that flow between the build's stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from restnet_compile.bundle.manifest import StitchInfo, TuneInfo
from restnet_compile.config.build import BuildConfig, PlanSettings
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.family import Anchor
from restnet_compile.selection.rule import Decision


@dataclass(frozen=True)
class Variant:
    """One variant of the build: an anchor model or a stitched network, with its measurements.

    ``unusable`` says why a stitch can never ship whatever the profile (non-finite logits): it is decided
    infeasible with that reason and left out of the selection. ``parity_failure`` says why its exported model was
    dropped (it then takes no part in the selection).
    """

    id: str
    kind: str
    module: nn.Module
    stitch: StitchInfo
    val_accuracy: float
    test_accuracy: float
    cost: CostReport
    tune: TuneInfo | None = None
    decision: Decision | None = None
    unusable: str | None = None
    parity_failure: str | None = None


@dataclass(frozen=True)
class PairResult:
    """What planning found for one pair of anchors (``L-M``): its CKA matrix (rows: ``big``'s blocks) and, when it
    has no candidate, why the rule rejected each pair of blocks."""

    name: str
    big: str
    little: str
    cka: np.ndarray[Any, np.dtype[np.float64]]
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """Everything the export stage needs: the inputs, the CKA matrix and every costed, decided variant.

    ``rejected``: when the plan found no stitch candidate, why it rejected each pair of blocks, one line each.

    A family of three or more anchors has ``anchors`` (largest first; ``large`` and ``small`` are its ends) and
    ``pairs``, one result per stitched pair; ``cka`` is then its first pair's.
    """

    config: BuildConfig
    profile: Profile
    target: Target
    large: BlockSequence
    small: BlockSequence
    splits: Splits
    cka: np.ndarray[Any, np.dtype[np.float64]]
    rule: PlanSettings
    variants: list[Variant]
    rejected: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    pairs: tuple[PairResult, ...] = ()

    @property
    def is_family(self) -> bool:
        """Whether this is a family of three or more anchors (its manifest and report have the family fields)."""
        return len(self.anchors) > 2

    def shipped(self) -> dict[str, nn.Module]:
        """Variant id -> module of every selected variant, in build order."""
        return {v.id: v.module for v in self.variants if v.decision and v.decision.selected}
