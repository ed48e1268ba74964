"""``analyze``: the CKA matrix of a model pair, the stitch candidates it yields (with FLOPs) and ``cka.png``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from restnet_compile.bundle.manifest import CandidateRule
from restnet_compile.config.build import BuildConfig
from restnet_compile.cost.flops import count_flops
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.pipeline.candidates import candidate_rule, plan
from restnet_compile.pipeline.choices import check_choices, resolve_device
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import ADAPTERS, StitchedNet


@dataclass(frozen=True)
class CandidateSummary:
    """One stitch candidate of ``analyze``.

    Attributes:
        id: Variant id such as ``L3-S2``.
        front_block: Last block kept from the prefix model.
        back_block: Block of the suffix model the adapter feeds (the suffix starts after it).
        adapter: The planned adapter.
        cka: CKA of the two blocks.
        flops: Multiply-adds of the stitched network.
    """

    id: str
    front_block: int
    back_block: int
    adapter: str
    cka: float
    flops: int


@dataclass(frozen=True)
class AnalyzeResult:
    """The CKA matrix of a model pair and the stitch candidates the rule picks from it.

    Attributes:
        large: Large model name.
        small: Small model name.
        large_blocks: ``"L0 stem: map 64x16x16"``-style label of every large-model block.
        small_blocks: The same for the small model.
        cka: ``len(large_blocks) x len(small_blocks)`` linear CKA.
        rule: The candidate rule and its parameters.
        candidates: Every candidate the rule picks, with the FLOPs of its stitched network.
        samples: Calibration images the matrix was computed on.
        heatmap: Path of ``cka.png``, or None when not written.
        rejected: When the rule picks no candidate, why it rejected each pair of blocks, one line each.
    """

    large: str
    small: str
    large_blocks: list[str]
    small_blocks: list[str]
    cka: list[list[float]]
    rule: CandidateRule
    candidates: list[CandidateSummary]
    samples: int
    heatmap: Path | None
    rejected: tuple[str, ...] = ()


def block_labels(model: BlockSequence, tag: str) -> list[str]:
    """``"L3 layer1.2: map 64x16x16"`` for every block of ``model``."""
    pairs = enumerate(zip(model.block_names, model.feature_specs(), strict=True))
    return [f"{tag}{k} {name}: {spec.describe()}" for k, (name, spec) in pairs]


def survey(config: BuildConfig, out_dir: Path | None = None, samples: int | None = None) -> AnalyzeResult:
    """Compute the CKA matrix on the calibration split, plan the candidates, count their FLOPs, draw the heatmap.

    Args:
        config: Models, weights, data, seed and candidate rule.
        out_dir: Where ``cka.png`` goes (written last and atomically); None writes nothing.
        samples: Calibration images to use (default: the whole calibration split).
    """
    check_choices(config)
    if config.models is not None:
        names = " ".join(f"--model {m.label()}" for m in config.models)
        raise BadInputError(
            f"models: analyze surveys one pair (--large / --small); a family's build ({names}) reports the CKA of "
            "every pair it stitches in its report.md"
        )
    large, small = load_models(config)
    images = load_splits(config, large).calib.images[:samples]
    cka = compute_cka(large, small, images, config.cka_batch_size, None, resolve_device(config.device))
    p = plan(config, cka, large, small)
    rule, front, back = p.rule, p.front, p.back
    rows = []
    for c in p.candidates:
        i, j = c.point.front_block, c.point.back_block
        torch.manual_seed(config.seed)
        adapter = ADAPTERS.get(c.adapter)(front.feature_specs()[i], back.feature_specs()[j])
        flops = count_flops(StitchedNet(front, back, c.point, adapter), large.input_shape).total
        rows.append(CandidateSummary(c.point.variant_id, i, j, c.adapter, round(c.cka, 4), flops))
    heatmap = None
    if out_dir is not None:
        from restnet_compile.similarity.heatmap import write_cka_heatmap

        swap = rule.order == "small-large"
        marked = [(r.back_block, r.front_block) if swap else (r.front_block, r.back_block) for r in rows]
        title = f"linear CKA: {config.large} (rows) vs {config.small}\n{len(images)} calibration images"
        rows_l = [f"L{k}" for k in range(len(large.blocks))]
        cols_s = [f"S{k}" for k in range(len(small.blocks))]
        heatmap = write_cka_heatmap(cka, Path(out_dir) / "cka.png", rows_l, cols_s, marked, title)
    matrix = [[round(float(x), 4) for x in row] for row in cka]
    return AnalyzeResult(
        config.large,
        config.small,
        block_labels(large, "L"),
        block_labels(small, "S"),
        matrix,
        candidate_rule(rule),
        rows,
        len(images),
        heatmap,
        p.rejected,
    )
