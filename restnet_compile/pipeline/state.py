"""The typed records that flow between the build's stages, in data-flow order.

``Screen`` (screen -> candidates, costs), ``Plan`` (candidates -> tune), ``Variant`` (costs -> decide),
``PairResult`` and ``Analysis`` (decide -> export), ``Exported`` (export -> parity), ``ParityDrops`` (parity -> export
again), ``Checked`` (parity -> publish) and ``Staged`` (a worker's export and parity, sent back to be published).
What one stage keeps in the build cache beside its files (``TunedMeta``, ``ExportMeta``) stays with that stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from restnet_compile.bundle.manifest import Manifest, StitchInfo, TuneInfo
from restnet_compile.bundle.result import CacheEvent
from restnet_compile.config.build import BuildConfig, PlanSettings
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport
from restnet_compile.data import Splits
from restnet_compile.errors import InfeasibleError
from restnet_compile.export import ExportedVariant
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache.stages import CacheBlob
from restnet_compile.pipeline.family import Anchor
from restnet_compile.selection.rule import Decision
from restnet_compile.stitching import Candidate


@dataclass(frozen=True)
class Screen:
    """Costs of every variant that could be built, per profile, and what each profile can run.

    Attributes:
        stitches: Ids of every stitch the plan could pick (``L1-S0``...).
        costs: Profile name -> variant id (``large``, ``small``, ``L1-S0``...) -> estimated cost on that profile.
        runnable: Profile name -> pair of anchors (``L-S``) -> the (front cut, back block) pairs whose stitch fits
            that profile.
        failures: Profile name -> why nothing fits it (the profiles that fit something are absent).
        misses: Profile name -> pair of anchors -> (front cut, back block) -> the limits of that profile the pair's
            stitch misses.
        anchors_fit: Profile name -> the ids of the anchors that fit that profile.
    """

    stitches: tuple[str, ...]
    costs: dict[str, dict[str, CostReport]]
    runnable: dict[str, dict[str, frozenset[tuple[int, int]]]]
    failures: dict[str, InfeasibleError]
    misses: dict[str, dict[str, dict[tuple[int, int], str]]] = dataclasses.field(default_factory=dict)
    anchors_fit: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    def fits(self, profile: str) -> int:
        """How many stitches ``profile`` can run, over every pair."""
        return sum(len(p) for p in self.runnable[profile].values())


@dataclass(frozen=True)
class Plan:
    """The candidate rule, its candidates, and which model gives the prefix (front) and which the suffix (back).

    ``rejected``: when there is no candidate, why the rule rejected each pair of blocks, one line each.
    """

    rule: PlanSettings
    candidates: list[Candidate]
    front: BlockSequence
    back: BlockSequence
    rejected: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class Exported:
    """The analysis with graph-measured costs and its final decisions, where each shipped variant lives, and the
    manifest of the exported files (without parity, model bytes and checksums), written beside them."""

    analysis: Analysis
    variants: dict[str, ExportedVariant]
    manifest: Manifest


@dataclass(frozen=True)
class ParityDrops:
    """Stitched variants that failed parity: variant id -> why (the caller drops them and exports again)."""

    reasons: dict[str, str]


@dataclass(frozen=True)
class Checked:
    """A bundle's files, exported and checked for parity, in the folder ``root``: everything but the reports, the
    model bytes and the checksums, which :func:`restnet_compile.pipeline.publish.publish` adds."""

    manifest: Manifest
    root: Path


@dataclass(frozen=True)
class Staged:
    """A bundle's files as a worker wrote them, before reports, checksums and the archive; the cache entries it
    computed and what it reused or stored."""

    manifest: Manifest
    files: dict[str, bytes]
    dirs: list[str]
    events: list[CacheEvent]
    entries: list[CacheBlob]

    def unpack(self, stage: Path) -> Checked:
        """Write the files into ``stage``: the checked bundle the worker made, here."""
        for d in self.dirs:
            (stage / d).mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return Checked(self.manifest, stage)
