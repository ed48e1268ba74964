"""The typed values that flow between the build's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from restnet_compile.config.build import BuildConfig, PlanSettings
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport
from restnet_compile.data import Splits
from restnet_compile.models import BlockSequence
from restnet_compile.selection.rule import Decision


@dataclass(frozen=True)
class Variant:
    """One variant of the build: an anchor model or a stitched network, with its measurements; ``parity_failure``
    says why its exported model was dropped (it then takes no part in the selection)."""

    id: str
    kind: str
    module: nn.Module
    stitch: dict
    val_accuracy: float
    test_accuracy: float
    cost: CostReport
    tune: dict | None = None
    decision: Decision | None = None
    parity_failure: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything the export stage needs: the inputs, the CKA matrix and every costed, decided variant."""

    config: BuildConfig
    profile: Profile
    target: Target
    large: BlockSequence
    small: BlockSequence
    splits: Splits
    cka: np.ndarray
    rule: PlanSettings
    variants: list[Variant]

    def shipped(self) -> dict[str, nn.Module]:
        """Variant id -> module of every selected variant, in build order."""
        return {v.id: v.module for v in self.variants if v.decision and v.decision.selected}
