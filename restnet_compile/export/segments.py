"""Segments: every block range the shipped variants need, once, and each variant as a chain of them.

A variant is a walk over pieces: the anchors ``large`` / ``small`` (and a family's ``middle``...) run all blocks of
one donor and its head; a
stitched variant ``L<i>-S<j>`` runs the front donor's blocks ``0..i``, its adapter, then the back donor's blocks
``j+1..`` and head. Counting the head as the block after the last, every walk is a set of half-open ranges over one
donor's pieces. Cutting each donor at every range end any variant uses gives the segments: a range shared by several
variants (the large prefix of ``L3-S2`` and ``L4-S2``, the small suffix of every ``*-S2`` and of ``small``) is one
segment, stored and quantized once. Each adapter is a segment of its own.

Each segment is calibrated on the inputs it actually sees: the float outputs of every segment that precedes it in
some chain, on the build's calibration images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from restnet_compile.models.blocks import BlockSequence
from restnet_compile.stitching.net import ANCHOR_IDS, StitchedNet

DONORS = ANCHOR_IDS  # letter -> the anchor id a donor's segments name as their ``model``
ANCHOR_TAGS = {vid: tag for tag, vid in ANCHOR_IDS.items()}
#: Segments in a file: the large model's first, then the adapters, then each smaller anchor's, largest first.
_MODEL_ORDER = {"large": 0, "adapter": 1, **{ANCHOR_IDS[t]: 2 + k for k, t in enumerate("MNOPQRS")}}


def segment_order(model: str) -> int:
    """Where a segment of ``model`` (an anchor id, ``adapter`` or ``variant``) comes in a file of segments."""
    return _MODEL_ORDER.get(model, len(_MODEL_ORDER) + 1)


@dataclass(frozen=True)
class SegmentPlan:
    """One segment: a block range of one donor, or one variant's adapter.

    Attributes:
        id: ``L0-3`` (large blocks 0 to 3), ``L4`` (block 4 alone), ``S3-H`` (small blocks 3 to the last, then the
            head), ``SH`` (the head alone), ``A-L3-S2`` (the adapter of variant ``L3-S2``).
        model: ``large``, ``small``, ``adapter``, or ``variant`` for a whole variant that is none of these.
        start: First block (0 for an adapter).
        stop: Block after the last one (0 for an adapter); the head is not counted.
        head: Whether the donor's head ends the segment.
        module: The segment as one module.
    """

    id: str
    model: str
    start: int
    stop: int
    head: bool
    module: nn.Module


@dataclass(frozen=True)
class _Range:
    tag: str  # L, S, or A (adapter)
    start: int
    stop: int  # over pieces: the head is piece ``len(blocks)``
    owner: str  # the variant, for an adapter


def _walk(vid: str, module: nn.Module) -> list[_Range]:
    if isinstance(module, BlockSequence) and vid in ANCHOR_TAGS:
        return [_Range(ANCHOR_TAGS[vid], 0, len(module.blocks) + 1, "")]
    if isinstance(module, StitchedNet):
        p = module.point
        n_back = p.back_block + 1 + len(module.suffix)
        return [
            _Range(p.front_tag, 0, p.front_block + 1, ""),
            _Range("A", 0, 0, vid),
            _Range(p.back_tag, p.back_block + 1, n_back + 1, ""),
        ]
    return [_Range("V", 0, 0, vid)]  # any other module: one segment of its own


def _pieces(variants: dict[str, nn.Module]) -> tuple[dict[str, dict[int, nn.Module]], dict[str, int]]:
    """Each donor's pieces found in the anchors or the stitched variants (index -> module), and where its head is
    (its number of blocks) for the donors whose head some variant runs."""
    pieces: dict[str, dict[int, nn.Module]] = {}
    heads: dict[str, int] = {}
    for vid, m in variants.items():
        if isinstance(m, BlockSequence) and vid in ANCHOR_TAGS:
            tag = ANCHOR_TAGS[vid]
            pieces.setdefault(tag, {}).update(enumerate([*m.blocks, m.head]))
            heads[tag] = len(m.blocks)
        elif isinstance(m, StitchedNet):
            p = m.point
            pieces.setdefault(p.front_tag, {}).update(enumerate(m.prefix))
            heads[p.back_tag] = p.back_block + 1 + len(m.suffix)
            back = {p.back_block + 1 + k: b for k, b in enumerate(m.suffix)}
            back[heads[p.back_tag]] = m.head
            pieces.setdefault(p.back_tag, {}).update(back)
    return pieces, heads


def segment_id(tag: str, start: int, stop: int, n_blocks: int | None) -> str:
    """The id of pieces ``start .. stop-1`` of donor ``tag`` (piece ``n_blocks`` is the head; None: no variant runs
    this donor's head)."""
    if n_blocks is not None and start == n_blocks:
        return f"{tag}H"
    if n_blocks is not None and stop == n_blocks + 1:
        return f"{tag}{start}-H"
    return f"{tag}{start}" if stop == start + 1 else f"{tag}{start}-{stop - 1}"


def plan_segments(
    variants: dict[str, nn.Module], every_block: bool = False
) -> tuple[dict[str, SegmentPlan], dict[str, tuple[str, ...]]]:
    """The segments ``variants`` need and each variant's chain of segment ids, both in a stable order.

    ``every_block``: cut each donor between every two blocks the variants run (the last block and the head stay
    together), not only where a variant enters or leaves it: longer chains, but a variant added later finds the
    blocks it needs already cut, so a patch that adds it carries little more than its adapter.

    A variant that is neither an anchor (``large`` / ``small``) nor a stitched network is one segment of its own
    (``model`` ``variant``, its id the variant's).
    """
    walks = {vid: _walk(vid, m) for vid, m in variants.items()}
    pieces, heads = _pieces(variants)
    cuts: dict[str, set[int]] = {tag: set() for tag in pieces}
    for ranges in walks.values():
        for r in ranges:
            if r.tag not in ("A", "V"):
                inner = [c for c in range(r.start, r.stop) if c != heads.get(r.tag)] if every_block else []
                cuts[r.tag].update((r.start, r.stop, *inner))
    segments: dict[str, SegmentPlan] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for vid, ranges in walks.items():
        chain: list[str] = []
        for r in ranges:
            if r.tag == "A":
                net = variants[vid]
                assert isinstance(net, StitchedNet), "only a stitched variant walks over an adapter"
                adapter = net.adapter
                seg = SegmentPlan(f"A-{vid}", "adapter", 0, 0, False, adapter)
                segments[seg.id] = seg
                chain.append(seg.id)
                continue
            if r.tag == "V":
                segments[vid] = SegmentPlan(vid, "variant", 0, 0, False, variants[vid].eval())
                chain.append(vid)
                continue
            n_blocks = heads.get(r.tag)
            bounds = sorted(c for c in cuts[r.tag] if r.start <= c <= r.stop)
            for a, b in itertools.pairwise(bounds):
                sid = segment_id(r.tag, a, b, n_blocks)
                if sid not in segments:
                    module = nn.Sequential(*(pieces[r.tag][k] for k in range(a, b))).eval()
                    head = n_blocks is not None and b > n_blocks
                    segments[sid] = SegmentPlan(sid, DONORS[r.tag], a, b - 1 if head else b, head, module)
                chain.append(sid)
        chains[vid] = tuple(chain)
    ordered = dict(sorted(segments.items(), key=lambda kv: _order(kv[1])))
    return ordered, chains


def _order(s: SegmentPlan) -> tuple[int, int, str]:
    return (segment_order(s.model), s.start, s.id)


@torch.no_grad()
def segment_inputs(
    segments: dict[str, SegmentPlan], chains: dict[str, tuple[str, ...]], images: np.ndarray, batch: int = 250
) -> dict[str, np.ndarray]:
    """The float inputs every segment sees on ``images``: for each distinct chain prefix that leads to it, that
    prefix's output in PyTorch (the images themselves for a chain's first segment), concatenated in chain order."""
    outputs: dict[tuple[str, ...], np.ndarray] = {}

    def run(prefix: tuple[str, ...]) -> np.ndarray:
        if prefix not in outputs:
            x = images if len(prefix) == 1 else run(prefix[:-1])
            module = segments[prefix[-1]].module
            outputs[prefix] = np.concatenate(
                [module(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
            )
        return outputs[prefix]

    prefixes: dict[str, dict[tuple[str, ...], None]] = {sid: {} for sid in segments}
    for chain in chains.values():
        for k, sid in enumerate(chain):
            prefixes[sid].setdefault(chain[:k], None)
    return {sid: np.concatenate([run(p) if p else images for p in ps]) for sid, ps in prefixes.items()}
