"""Stage 7: the shipped variants exported for the target; costs re-read from the exported graphs (cached); the
manifest of the exported files written beside them.

Before export, RAM and flash come from a trace of the PyTorch module. Once a ``.tflite`` exists its own execution
order and tensors are the truth (see :mod:`restnet_compile.export.graph_cost`): each exported variant's costs are
replaced by its graph's and the selection is decided again; when a shipped variant no longer fits, the new selection
is exported again, so every variant that ships has been checked on its exported graph.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.progress import Reporter
from restnet_compile.bundle.manifest import MANIFEST, write_manifest
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport
from restnet_compile.cost.latency import roofline_ms
from restnet_compile.export import EXPORTERS, ExportedVariant
from restnet_compile.export.base import Conversion, VariantBudget, boundary_bytes
from restnet_compile.export.graph_cost import GraphCost, chain_cost, graph_cost, is_tflm, variant_model
from restnet_compile.export.tflite_convert import Converted, convert
from restnet_compile.pipeline.cache.disk import Entry
from restnet_compile.pipeline.cache.fingerprint import array_digest
from restnet_compile.pipeline.cache.stages import Saved, StageCache, StageKey, empty_dir, read_meta
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.manifest_build import build_manifest
from restnet_compile.pipeline.state import Analysis, Exported, Variant

KEY = StageKey("export", 5, ("plan", "tune", "selection", "selection_noise", "strict_parity", "profile"))


@dataclass(frozen=True)
class ExportedRow:
    """Where one variant went (a row of :class:`ExportMeta`, in export order)."""

    variant: str
    exported: ExportedVariant


@dataclass(frozen=True)
class ExportMeta:
    """What the cache keeps beside the exported files: where every variant lives, in export order."""

    exported: tuple[ExportedRow, ...]


def _cost_of(
    ex: ExportedVariant, bundle_dir: Path, profile: Profile, measure: bool, segments: dict[str, GraphCost]
) -> GraphCost:
    """The exported variant's graph cost; for a chain, its segments' (each measured once, kept in ``segments``).
    A chained variant with a graph of its own (``segments.tflite``) runs that graph: its memory is the graph's, its
    bytes its segments'."""
    for seg in ex.chain:
        if seg.id not in segments:
            model = variant_model(bundle_dir / seg.file, seg.signature)  # its own file, or cut from the shared one
            segments[seg.id] = graph_cost(model, seg.signature, profile, measure)
    if ex.chain and ex.signature is None:
        return chain_cost([segments[s.id] for s in ex.chain], boundary_bytes(ex.chain), one_arena=is_tflm(profile))
    assert ex.file is not None and ex.signature is not None, "a variant that is no chain has a file and a graph"
    own = graph_cost(variant_model(bundle_dir / ex.file, ex.signature), ex.signature, profile, measure)
    if not ex.chain:
        return own
    return dataclasses.replace(own, model_bytes=sum(segments[s.id].model_bytes for s in ex.chain))


def _chain_latency(cost: CostReport, calls: int, profile: Profile) -> float:
    """The estimate of a variant run as ``calls`` interpreter calls (one per segment), at the profile's percentile,
    from the same per-op terms as the one-graph estimate."""
    if not cost.latency_terms:
        return cost.latency_ms
    lm = profile.latency_model
    return round(roofline_ms(cost.latency_terms, lm, invokes=calls) * lm.percentile_factor, 4)


def with_graph_costs(
    variants: list[Variant],
    bundle_dir: Path,
    exported: dict[str, ExportedVariant],
    profile: Profile,
    target: Target,
    progress: Reporter,
    segments: dict[str, GraphCost] | None = None,
) -> list[Variant]:
    """``variants`` with the costs of each exported TFLite variant read from its graph (others unchanged); a variant
    run as a chain of interpreter calls also counts one call per segment after the first (one that a signature runs
    in one call does not).

    ``segments`` collects the cost of every segment a chained variant runs.
    """
    out = []
    segments = {} if segments is None else segments
    measure = is_tflm(profile) and target.dtype == "int8"
    for v in variants:
        ex = exported.get(v.id)
        if ex is None or not (ex.chain or (ex.file is not None and ex.file.endswith(".tflite"))):
            out.append(v)
            continue
        gc = _cost_of(ex, bundle_dir, profile, measure, segments)
        cost = dataclasses.replace(
            v.cost,
            latency_ms=(
                _chain_latency(v.cost, len(ex.chain), profile)
                if ex.chain and ex.signature is None
                else v.cost.latency_ms
            ),
            ram_bytes=gc.ram_bytes(profile),
            model_bytes=gc.model_bytes,
            flash_bytes=gc.model_bytes + profile.runtime_flash,
            ram_source="tflite-graph",
            arena_bytes=gc.arena_estimate,
            arena_measured=gc.arena_measured,
            ops=gc.ops,
        )
        out.append(dataclasses.replace(v, cost=cost))
        progress(
            f"  costs {v.id}: size {v.cost.model_bytes:,} B estimated, {cost.model_bytes:,} B exported "
            f"({v.cost.model_bytes / cost.model_bytes - 1:+.1%}); RAM {v.cost.ram_bytes:,} / {cost.ram_bytes:,} B "
            f"({v.cost.ram_bytes / cost.ram_bytes - 1:+.1%})"
        )
        if gc.arena_measured is not None:
            progress(
                f"  TFLM arena {v.id}: measured {gc.arena_measured:,} B, estimated {gc.arena_estimate:,} B "
                f"({(gc.arena_estimate or 0) / gc.arena_measured - 1:+.1%})"
            )
    return out


def _calib(a: Analysis) -> np.ndarray[Any, Any]:
    return np.asarray(a.splits.calib.images[: a.target.calibration_samples])


def export_inputs(a: Analysis, cache: StageCache) -> dict[str, Any]:
    """What keys the export of ``a``'s current selection in the cache."""
    return {
        "config": KEY.config_part(a.config),
        "target": a.target.model_dump(mode="json"),
        "variants": [[vid, cache.module(m)] for vid, m in a.shipped().items()],
        "calib": array_digest(_calib(a)),
    }


def conversions_of(a: Analysis) -> list[Conversion]:
    """The model conversions the export of ``a``'s current selection runs (``Exporter.conversions``)."""
    exporter = EXPORTERS.get(a.target.exporter)()
    return exporter.conversions(a.shipped(), a.large.input_shape, _calib(a), a.target)


def conversion_cost(c: Conversion) -> float:
    """A relative estimate of how long converting ``c`` takes: onnx2tf's time grows with the modules it converts."""
    return float(sum(1 for _ in c.module.modules()))


def convert_job(c: Conversion, *, progress: Reporter) -> Converted:
    """``c`` converted (a job of the executor; see :func:`restnet_compile.export.tflite_convert.convert`)."""
    return convert(c)


def _export_once(a: Analysis, stage: Path, work: Path, cache: StageCache) -> tuple[dict[str, ExportedVariant], bool]:
    exporter = EXPORTERS.get(a.target.exporter)()
    shipped, calib = a.shipped(), _calib(a)
    inputs = export_inputs(a, cache)

    def save(exported: dict[str, ExportedVariant]) -> Saved:
        files = {f"tree/{p.relative_to(stage).as_posix()}": p for p in sorted(stage.rglob("*")) if p.is_file()}
        return ExportMeta(tuple(ExportedRow(vid, ev) for vid, ev in exported.items())), files

    def load(e: Entry) -> dict[str, ExportedVariant]:
        try:
            for name in e.files:
                if name.startswith("tree/"):
                    dest = stage / name.removeprefix("tree/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(e.file(name), dest)
            return {row.variant: row.exported for row in read_meta(e, ExportMeta).exported}
        except Exception:
            empty_dir(stage)  # the export that runs instead starts from an empty directory
            raise

    def compute() -> dict[str, ExportedVariant]:
        return exporter.export(shipped, a.large.input_shape, calib, a.target, stage, work)

    return cache.run("export", KEY, inputs, compute, save, load)


def _budgets(a: Analysis, exported: dict[str, ExportedVariant]) -> list[VariantBudget]:
    return [
        VariantBudget(
            v.id, exported[v.id].chain, v.cost.arena_bytes or v.cost.ram_bytes, v.cost.latency_ms, v.test_accuracy
        )
        for v in a.variants
        if v.decision and v.decision.selected and v.id in exported
    ]


def export_stage(a: Analysis, stage: Path, work: Path, cache: StageCache, progress: Reporter) -> Exported:
    """Export the selected variants into ``stage`` until the graph-measured selection is the exported one."""
    exported: dict[str, ExportedVariant] = {}
    segments: dict[str, GraphCost] = {}
    for _attempt in range(len(a.variants) + 1):  # each repeat drops a variant its exported graph showed not to fit
        empty_dir(stage)
        before = set(a.shipped())
        progress(f"export: {len(before)} variants -> target {a.target.name}")
        progress.stage("export", 1)
        exported, reused = _export_once(a, stage, work, cache)
        if reused:
            progress("  export: reused (cache)")
        progress.advance("export")
        segments = {}
        variants = with_graph_costs(a.variants, stage, exported, a.profile, a.target, progress, segments)
        a = dataclasses.replace(a, variants=decide(variants, a.profile, a.config, len(a.splits.val)))
        after = set(a.shipped())
        if after == before:
            break
        progress(f"  exported graphs changed the selection: {', '.join(sorted(before ^ after))}; exporting again")
    exporter = EXPORTERS.get(a.target.exporter)
    exporter().finish(stage, exported, _budgets(a, exported))
    manifest = build_manifest(a, exported, exporter.layout, segments)
    write_manifest(stage / MANIFEST, manifest)  # the device runtime opens the bundle through it
    return Exported(a, exported, manifest)
