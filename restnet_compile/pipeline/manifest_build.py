"""The build's manifest made from its analysis and exported files (the manifest format: ``bundle/manifest.py``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from restnet_compile.bundle.manifest import (
    FORMAT_VERSION,
    AnchorInfo,
    DataInfo,
    ImageInfo,
    InputSpec,
    Manifest,
    ModelInfo,
    Models,
    PairInfo,
    Parity,
    PreprocessInfo,
    ProfileInfo,
    SelectionInfo,
    StitchingInfo,
    TargetInfo,
    VariantEntry,
)
from restnet_compile.bundle.segment_info import Segment
from restnet_compile.export.base import ExportedVariant
from restnet_compile.export.graph_cost import GraphCost
from restnet_compile.export.parity import ParityResult
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.cache.fingerprint import tool_versions
from restnet_compile.pipeline.candidates import candidate_rule
from restnet_compile.pipeline.load import image_policy, weights_sha
from restnet_compile.pipeline.state import Analysis, Variant
from restnet_compile.selection.rule import describe_rule


def _variant_entry(v: Variant, exported: ExportedVariant | None) -> VariantEntry:
    assert v.decision is not None
    return VariantEntry(
        id=v.id,
        kind=v.kind,
        stitch=v.stitch,
        tune=v.tune,
        flops=v.cost.flops,
        params=v.cost.params,
        uncounted_ops=dict(v.cost.uncounted_ops),
        ram_bytes=v.cost.ram_bytes,
        model_bytes=v.cost.model_bytes,
        flash_bytes=v.cost.flash_bytes,
        latency_ms=v.cost.latency_ms,
        elementwise_ops=v.cost.elementwise,
        ram_source=v.cost.ram_source,
        arena_bytes=v.cost.arena_bytes,
        arena_bytes_measured=v.cost.arena_measured,
        graph_ops=tuple(v.cost.ops) if v.cost.ops is not None else None,
        latency_terms=tuple(tuple(t) for t in v.cost.latency_terms),
        accuracy_fp32=v.test_accuracy,
        val_accuracy_fp32=v.val_accuracy,
        feasible=v.decision.feasible,
        selected=v.decision.selected,
        reasons=tuple(v.decision.reasons),
        file=exported.file if exported and exported.signature is not None else None,
        signature=exported.signature if exported else None,
        accuracy_deployed=None,
        parity=None,
        chain=tuple(s.id for s in exported.chain) if exported and exported.chain else None,
    )


def _segments(exported: dict[str, ExportedVariant], costs: dict[str, GraphCost]) -> tuple[Segment, ...] | None:
    """Every segment the exported chains run, once, in the order of the chains' first use."""
    found = {s.id: s for ev in exported.values() for s in ev.chain}
    if not found:
        return None
    return tuple(
        dataclasses.replace(
            s,
            model_bytes=costs[s.id].model_bytes,
            arena_bytes=costs[s.id].arena_estimate,
            arena_bytes_measured=costs[s.id].arena_measured,
        )
        for s in found.values()
    )


def add_parity(manifest: Manifest, parity: dict[str, ParityResult]) -> Manifest:
    """``manifest`` with each checked variant's deployed accuracy and parity with PyTorch."""
    return manifest.with_parity(
        {
            vid: Parity(max_abs_diff=r.max_abs_diff, top1_agreement=r.top1_agreement, accuracy_torch=r.accuracy_torch)
            for vid, r in parity.items()
        },
        {vid: r.accuracy for vid, r in parity.items()},
    )


def _model_info(a: Analysis, role: str, model: BlockSequence, weights: str | None) -> ModelInfo:
    norm = model.normalization
    assert norm is not None, "the build's models carry their normalisation (pipeline.load)"
    return ModelInfo(
        name=model.model_name,
        weights_sha256=weights_sha(model.model_name, weights),
        test_accuracy=next(v.test_accuracy for v in a.variants if v.id == role),
        preprocess=PreprocessInfo(mean=tuple(norm.mean), std=tuple(norm.std), source=norm.source),
    )


def _rounded(cka: np.ndarray[Any, Any]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(round(float(x), 4) for x in row) for row in cka)


def _models(a: Analysis) -> Models:
    """The donors: the pair's two, or a family's ends and (``anchors``) all of its anchors."""
    cfg = a.config
    if not a.is_family:
        return Models(
            large=_model_info(a, "large", a.large, cfg.large_weights),
            small=_model_info(a, "small", a.small, cfg.small_weights),
        )
    infos = {x.id: _model_info(a, x.id, x.model, x.spec.weights) for x in a.anchors}
    return Models(
        large=infos[a.anchors[0].id],
        small=infos[a.anchors[-1].id],
        anchors=tuple(AnchorInfo(id=x.id, tag=x.tag, flops=x.flops, model=infos[x.id]) for x in a.anchors),
    )


def build_manifest(
    a: Analysis, exported: dict[str, ExportedVariant], layout: str, segment_costs: dict[str, GraphCost] | None = None
) -> Manifest:
    """The manifest without parity (see :func:`add_parity`), model bytes and ``files`` checksums (added last)."""
    p, t, cfg = a.profile, a.target, a.config
    c, h, w = a.large.input_shape
    policy = image_policy(cfg)
    return Manifest(
        format_version=FORMAT_VERSION,
        config=cfg.model_dump(),
        config_hash=cfg.config_hash(),
        seed=cfg.seed,
        tool_versions=tool_versions(),
        profile=ProfileInfo(
            name=p.name,
            device_class=p.device_class,
            soc=p.soc,
            runtime=p.runtime,
            latency_budget_ms=p.latency.budget,
            latency_percentile=p.latency.percentile,
            ram_bytes=p.ram,
            flash_bytes=p.flash,
            arena_bytes=p.arena,
            latency_model=p.latency_model.model_dump(exclude_none=True),
        ),
        selection=SelectionInfo(
            mode=cfg.selection,
            min_latency_gain=p.selection.min_latency_gain if cfg.selection == "pareto" else None,
            rule=describe_rule(p, cfg.selection, cfg.selection_noise if cfg.selection == "pareto" else 0.0),
        ),
        target=TargetInfo(
            name=t.name, format=t.exporter, dtype=t.dtype, io_dtype=t.io_dtype, float_ops=tuple(t.float_ops)
        ),
        input=InputSpec(
            layout=layout,
            shape=(c, h, w),
            range=(0.0, 1.0),
            dtype="float32",
            image=ImageInfo(
                resize=policy.resize,
                crop=policy.crop,
                interpolation=policy.interpolation,
                invert=None if policy.invert == "never" else policy.invert,
                fit_object=policy.fit_object,
            ),
        ),
        models=_models(a),
        data=DataInfo(
            dataset=cfg.dataset,
            split_seed=cfg.seed,
            train=len(a.splits.train),
            calib=len(a.splits.calib),
            val=len(a.splits.val),
            test=len(a.splits.test),
            notes=a.splits.notes or None,
        ),
        stitching=StitchingInfo(
            order="large-prefix -> small-suffix" if cfg.plan.order == "large-small" else "small-prefix -> large-suffix",
            rule=candidate_rule(a.rule),
            cka=() if a.is_family else _rounded(a.cka),
            rejected=a.rejected or None,
            pairs=tuple(
                PairInfo(name=p.name, big=p.big, little=p.little, cka=_rounded(p.cka), rejected=p.rejected or None)
                for p in a.pairs
            )
            if a.is_family
            else None,
        ),
        variants=tuple(_variant_entry(v, exported.get(v.id)) for v in a.variants),
        segments=_segments(exported, segment_costs or {}),
        files={},
    )
