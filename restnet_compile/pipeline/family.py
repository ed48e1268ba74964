"""Stage 1 of a family: K anchors loaded, ordered by measured FLOPs, and the pairs of them that are stitched.

A build stitches pairs of anchors. Two models (``large`` / ``small``, or ``models:`` of two) are one pair, exactly as
before. A family of K anchors (``models:``) is ordered by the FLOPs of one forward pass, largest first, and each
anchor gets a letter and an id: ``L`` / ``large`` for the largest, ``S`` / ``small`` for the smallest, and ``M``,
``N``, ... / ``middle``, ``middle2``, ... between them. With ``pairs: neighbours`` (the default) each anchor is
stitched with its neighbours in FLOPs (K - 1 pairs); with ``pairs: all`` every two anchors are (K (K - 1) / 2 pairs).

Each pair is built as a two-model build of its own would be: its config is the pair form of the family's config
(:meth:`Pair.config`), so its CKA matrix and tuned adapters have the same cache keys, and the same bytes, as that
build's. Variant ids name the anchors by letter: ``L3-M2`` joins the large model's blocks 0..3 to the middle
model's blocks after 2.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from restnet_compile.config.build import AnchorModel, BuildConfig
from restnet_compile.cost import Footprint, footprint
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.load import check_agree, check_spec_weights, load_models, load_spec
from restnet_compile.stitching.net import ANCHOR_IDS, anchor_tags


@dataclass(frozen=True)
class Anchor:
    """One anchor of the build: its id and letter, the loaded model, the config entry it came from, and its FLOPs
    (multiply-adds of one forward pass; 0 where a pair's order is given, not measured) with the footprint they were
    measured from (None where not measured: the screen measures it)."""

    id: str
    tag: str
    model: BlockSequence
    spec: AnchorModel
    flops: int
    footprint: Footprint | None = None


@dataclass(frozen=True)
class Pair:
    """Two anchors stitched with each other: ``big`` has more FLOPs than ``little``."""

    big: Anchor
    little: Anchor

    @property
    def name(self) -> str:
        """``L-M``: the two letters, largest first."""
        return f"{self.big.tag}-{self.little.tag}"

    def config(self, family: BuildConfig) -> BuildConfig:
        """The pair form of ``family``: what a build of these two models alone is given."""
        update: dict[str, object] = {"models": None, "pairs": "neighbours"}
        for role, a in (("large", self.big), ("small", self.little)):
            update |= {
                role: a.spec.name,
                f"{role}_weights": a.spec.weights,
                f"{role}_preprocess": a.spec.preprocess,
                f"{role}_split": a.spec.split,
            }
        return family.model_copy(update=update)


@dataclass(frozen=True)
class Family:
    """The build's anchors, largest first, and the pairs that are stitched.

    ``config`` is the build's config in its canonical form: a family's ``models`` in FLOPs order, and a family of two
    in the pair form, so it has the bytes of the same build given as ``large`` / ``small``.
    """

    config: BuildConfig
    anchors: tuple[Anchor, ...]
    pairs: tuple[Pair, ...]

    @property
    def is_pair(self) -> bool:
        """Whether this is a two-model build (one pair; the manifest and report have no family fields)."""
        return len(self.anchors) == 2

    @property
    def models(self) -> tuple[BlockSequence, ...]:
        """The anchors' models, largest first."""
        return tuple(a.model for a in self.anchors)

    def canonical(self, config: BuildConfig) -> BuildConfig:
        """``config`` (this family's, for any profile) in canonical form: ``models`` in FLOPs order, and a family of
        two in the pair form."""
        if config.models is None:
            return config
        ordered = config.model_copy(update={"models": tuple(a.spec for a in self.anchors)})
        return self.pairs[0].config(ordered) if self.is_pair else ordered


def stitched_pairs(anchors: tuple[Anchor, ...], pairs: str) -> tuple[Pair, ...]:
    """The pairs of ``anchors`` (largest first) that ``pairs`` (``neighbours`` / ``all``) stitches."""
    if pairs == "all":
        return tuple(Pair(a, b) for a, b in itertools.combinations(anchors, 2))
    return tuple(Pair(a, b) for a, b in itertools.pairwise(anchors))


def load_family(config: BuildConfig) -> Family:
    """The anchors of ``config``, frozen, split and normalising their inputs, with the pairs to stitch.

    A pair config loads as :func:`~restnet_compile.pipeline.load.load_models` does (``large`` is the large model,
    whatever its FLOPs). A family's anchors are ordered by measured FLOPs, largest first (ties keep the given order).

    Raises:
        BadInputError: what :func:`~restnet_compile.pipeline.load.load_models` refuses (named by its entry
            ``models[i]``), or anchors that disagree on input shape or classes.
    """
    if config.models is None:
        large, small = load_models(config)
        specs = config.anchor_specs()
        pair = (Anchor("large", "L", large, specs[0], 0), Anchor("small", "S", small, specs[1], 0))
        return Family(config, pair, stitched_pairs(pair, "neighbours"))
    for i, spec in enumerate(config.models):  # before any model is built: a missing checkpoint is found in seconds
        way_out = f"give its weights as models[{i}].weights or --model NAME=WEIGHTS"
        check_spec_weights(config, spec, f"models[{i}]", way_out)
    loaded = [
        (spec, load_spec(config, spec, f"models[{i}].preprocess", f"models[{i}]"))
        for i, spec in enumerate(config.models)
    ]
    check_agree([m for _, m in loaded])
    prints = [footprint(m, m.input_shape) for _, m in loaded]  # the screen's costs reuse them
    order = sorted(range(len(loaded)), key=lambda i: (-prints[i].flops.total, i))
    tags = anchor_tags(len(order))
    anchors = tuple(
        Anchor(ANCHOR_IDS[tag], tag, loaded[i][1], loaded[i][0], prints[i].flops.total, prints[i])
        for tag, i in zip(tags, order, strict=True)
    )
    family = Family(config, anchors, stitched_pairs(anchors, config.pairs))
    return dataclasses.replace(family, config=family.canonical(config))
