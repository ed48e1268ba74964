"""Segments benchmark: bytes of a bundle whose variants share block ranges, and what running a chain costs.

Usage: ``python bench/bench_segments.py [--out bench/results/segments.json] [--runs 300]``.
Builds the demo pair's variants once (every candidate on the phone profile, ``mnist5k``), then exports the same
variants, 3 of them (``small``, ``L3-S2``, ``L4-S2``) and all 7, six ways: ``tflite-int8`` (one signature per
variant in one file), ``tflite-int8-segments`` (one signature per segment in one file), the same with ``segment_file:
each`` and ``tflm-int8`` (one file per segment), ``tflm-int8`` with ``segment_cuts: every-block``, and each variant
alone in its own file.
Every export is checked against PyTorch through the device runtime on the test split. Latency: each stitched
variant as the runtime runs it from segments against the same variant as one whole graph (``tflite-int8``), measured
side by side in one run (medians of interleaved runs): in LiteRT through ``segments.tflite``'s variant signature (one
call), and as a chain of one call per segment (``each``); in the TFLite Micro host interpreter as a chain of segment
files. Patches: the patch that adds ``L4-S2`` to a bundle of the other variants, against the full bundle; these bench
bundles hold the model files, the C arrays and the manifest (a built bundle also has reports and reference outputs,
which change with every added variant). Sizes are bytes; times are only compared as ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from restnet_compile._util.progress import as_reporter
from restnet_compile._util.torch_state import deterministic
from restnet_compile.bundle.manifest import MANIFEST, Manifest, write_manifest
from restnet_compile.bundle.patch import read_patch
from restnet_compile.bundle.patch_make import make_patch
from restnet_compile.bundle.writer import checksums
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Target, load_profile, load_target
from restnet_compile.export import EXPORTERS
from restnet_compile.export.base import VariantBudget, boundary_bytes
from restnet_compile.export.graph_cost import graph_cost, variant_model
from restnet_compile.export.graph_memory import extract_signature
from restnet_compile.export.parity import check_parity, torch_logits
from restnet_compile.pipeline.cache.stages import StageCache
from restnet_compile.pipeline.driver import analyze_and_stitch
from restnet_compile.pipeline.manifest_build import build_manifest
from restnet_compile.pipeline.state import Analysis
from restnet_compile.runtime import Bundle
from restnet_compile.runtime.chain import quantize, requantize

MODEL_SUFFIXES = (".tflite", ".onnx", ".bin")
TARGETS = ["tflite-int8", "tflite-int8-segments", "tflite-int8-segments each", "tflm-int8", "tflm-int8 every-block"]
PATCHED = ["tflite-int8-segments", "tflite-int8-segments each", "tflm-int8", "tflm-int8 every-block"]
THREE = ["small", "L3-S2", "L4-S2"]
ADDED = "L4-S2"


def _target(name: str) -> Target:
    """A built-in target; ``NAME every-block`` is it with ``segment_cuts: every-block``, ``NAME each`` with
    ``segment_file: each`` (one file per segment)."""
    base, *options = name.split(" ")
    update = {"segment_cuts" if option == "every-block" else "segment_file": option for option in options}
    return load_target(base).model_copy(update=update)


def _export(a: Analysis, target_name: str, variants: dict, out: Path, work: Path) -> tuple[Manifest, int, dict]:
    target = _target(target_name)
    out.mkdir(parents=True)
    work.mkdir(parents=True)
    exporter = EXPORTERS.get(target.exporter)()
    exported = exporter.export(variants, a.large.input_shape, a.splits.calib.images, target, out, work)
    size = sum(f.stat().st_size for f in out.iterdir() if f.suffix in MODEL_SUFFIXES)
    costs = {v.id: v for v in a.variants}
    budgets = [
        VariantBudget(vid, ev.chain, boundary_bytes(ev.chain), costs[vid].cost.latency_ms, costs[vid].test_accuracy)
        for vid, ev in exported.items()
    ]
    exporter.finish(out, exported, budgets)  # the C arrays of tflm-int8 (arena figures left out here)
    segments = {s.id: s for ev in exported.values() for s in ev.chain}
    phone = load_profile("phone")
    costs = {
        k: graph_cost(variant_model(out / s.file, s.signature), s.signature, phone, False) for k, s in segments.items()
    }
    manifest = build_manifest(a, exported, exporter.layout, costs)
    manifest = dataclasses.replace(
        manifest,
        variants=tuple(dataclasses.replace(v, selected=v.id in variants) for v in manifest.variants),
        target=dataclasses.replace(manifest.target, format=target.exporter),
    )
    write_manifest(out / MANIFEST, manifest.with_files(checksums(out)))
    bundle = Bundle.open(out)
    test = a.splits.test
    parity = {}
    for vid, m in variants.items():
        r = check_parity(bundle, vid, torch_logits(m, test.images), test.images, test.labels, target)
        parity[vid] = {"top1_agreement": r.top1_agreement, "accuracy_drop": round(r.accuracy_torch - r.accuracy, 4)}
    return manifest, size, parity


def _paired_ms(chain, graph, x: np.ndarray, runs: int) -> dict:  # type: ignore[no-untyped-def]
    """Median ms of ``chain(x)`` and ``graph(x)``, run alternately so that load on the machine hits both alike."""
    for _ in range(10):
        chain(x)
        graph(x)
    times: dict[str, list[float]] = {"chain": [], "graph": []}
    for _ in range(runs):
        for key, fn in (("chain", chain), ("graph", graph)):
            start = time.perf_counter()
            fn(x)
            times[key].append(time.perf_counter() - start)
    return _ratio(statistics.median(times["chain"]) * 1e3, statistics.median(times["graph"]) * 1e3)


def _ratio(chain_ms: float, graph_ms: float) -> dict:
    return {"chain_ms": round(chain_ms, 4), "graph_ms": round(graph_ms, 4), "ratio": round(chain_ms / graph_ms, 3)}


def _litert_latency(chained: Path, one_graph: Path, vids: list[str], x: np.ndarray, runs: int) -> dict:
    a, b = Bundle.open(chained), Bundle.open(one_graph)
    out = {}
    for vid in vids:
        out[vid] = _paired_ms(lambda img, v=vid: a.run(img, v), lambda img, v=vid: b.run(img, v), x, runs)
    return out


def _tflm(model: bytes):  # type: ignore[no-untyped-def]
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=4 * 1024 * 1024)


def _tflm_latency(tflm_dir: Path, signatures: Path, vids: list[str], x: np.ndarray, runs: int) -> dict:
    """The TFLite Micro host interpreter: each variant's chain of segment files against its one-graph model cut
    from the multi-signature file (same blocks, same int8 kernels)."""
    bundle = Bundle.open(tflm_dir)
    m = bundle.manifest
    nhwc = x.transpose(0, 2, 3, 1)
    out = {}
    for vid in vids:
        chain = m.chain(vid)
        interps = [_tflm((tflm_dir / s.file).read_bytes()) for s in chain]
        graph = _tflm(extract_signature(signatures, vid))
        q0 = quantize(nhwc, chain[0].input)

        def run_chain(_img: np.ndarray, chain=chain, interps=interps, q0=q0) -> np.ndarray:  # type: ignore[no-untyped-def]
            q = q0
            for k, (seg, it) in enumerate(zip(chain, interps, strict=True)):
                if k:
                    q = requantize(q, chain[k - 1].output, seg.input)
                it.set_input(q, 0)
                it.invoke()
                q = it.get_output(0)
            return q

        gd = graph.get_input_details(0)
        scale, zero = gd["quantization_parameters"]["scales"][0], gd["quantization_parameters"]["zero_points"][0]
        qg = np.clip(np.round(nhwc / scale + zero), -128, 127).astype(np.int8)

        def run_graph(_img: np.ndarray, graph=graph, qg=qg) -> np.ndarray:  # type: ignore[no-untyped-def]
            graph.set_input(qg, 0)
            graph.invoke()
            return graph.get_output(0)

        out[vid] = _paired_ms(run_chain, run_graph, nhwc, runs)
    return out


def _sizes(a: Analysis, names: list[str], separate: dict[str, int], root: Path, result: dict, tag: str) -> dict:
    variants = {v.id: v.module for v in a.variants if v.id in names}
    stitched = [v for v in a.variants if v.id in names and v.kind == "stitched"]
    adapters = sum(sum(p.numel() for p in v.module.adapter.parameters()) for v in stitched)  # int8 weights
    reference = separate["large"] + separate["small"] + adapters
    row: dict = {
        "variants": list(variants),
        "large_plus_small_plus_adapters_bytes": reference,
        "separate_files_bytes": sum(separate[v] for v in variants),
        "targets": {},
    }
    for name in TARGETS:
        manifest, size, parity = _export(a, name, variants, root / f"{tag}-{name}", root / f"{tag}-{name}-work")
        row["targets"][name] = {
            "bundle_bytes": size,
            "over_large_small_adapters": round(size / reference, 3),
            "goal_le_1.05": size <= 1.05 * reference,
            "min_top1_agreement": min(p["top1_agreement"] for p in parity.values()),
            "max_accuracy_drop": max(p["accuracy_drop"] for p in parity.values()),
            "segments": len(manifest.segments or ()),
        }
        print(tag, name, row["targets"][name], flush=True)
    result[tag] = row
    return row


def _patches(a: Analysis, names: list[str], root: Path, tag: str) -> dict:
    """For each segment target: the patch adding ``L4-S2`` to the bundle of ``names`` without it, over the full."""
    variants = {v.id: v.module for v in a.variants if v.id in names}
    before = {k: m for k, m in variants.items() if k != ADDED}
    out = {}
    for name in PATCHED:
        old, new = root / f"{tag}-{name}-before", root / f"{tag}-{name}"
        _export(a, name, before, old, root / f"{tag}-{name}-before-work")
        patch = make_patch(old, new)
        (root / "p.patch").write_bytes(patch)
        read = read_patch(root / "p.patch")
        sources = {n: f.source for n, f in read.files.items() if n.endswith(".tflite")}
        blobs = read.blobs
        full = sum(p.stat().st_size for p in new.iterdir() if p.is_file())
        out[name] = {
            "segments": len(sources),
            "segments_from_old_bundle": sum(s == "base" for s in sources.values()),
            "segments_as_delta": sum(s == "delta" for s in sources.values()),
            "new_bytes": sum(len(b) for b in blobs.values()),
            "patch_bytes": len(patch),
            "bundle_bytes": full,
            "patch_over_bundle": round(len(patch) / full, 3),
            "goal_le_0.15": len(patch) <= 0.15 * full,
        }
        print(tag, "patch", name, out[name], flush=True)
    return out


def main() -> None:
    """Run the benchmark and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/segments.json"))
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="Build cache for the CKA matrix and tuned adapters (same bytes).")
    args = parser.parse_args()
    cfg = BuildConfig.model_validate(
        {"profile": "phone", "selection": "feasible", "seed": args.seed, "dataset": "mnist5k",
         "tune": {"epochs": args.epochs}}
    )  # fmt: skip
    with deterministic(cfg.seed, cfg.threads):
        store = StageCache.open(args.cache or False, as_reporter(lambda _m: None))
        a = analyze_and_stitch(cfg, load_profile("phone"), load_target("tflite-int8"), lambda _m: None, store)
    ids = [v.id for v in a.variants]
    result: dict = {"seed": args.seed, "dataset": cfg.dataset, "tune_epochs": args.epochs, "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        separate = {}
        for v in a.variants:
            _, separate[v.id], _ = _export(a, "tflite-int8", {v.id: v.module}, root / f"sep-{v.id}", root / f"w-{v.id}")
        result["separate_files_bytes"] = separate
        _sizes(a, THREE, separate, root, result, "three")
        _sizes(a, ids, separate, root, result, "seven")
        result["three"]["patch_add_L4-S2"] = _patches(a, THREE, root, "three")
        result["seven"]["patch_add_L4-S2"] = _patches(a, ids, root, "seven")
        x = a.splits.test.images[:1]
        stitched = [v.id for v in a.variants if v.kind == "stitched"]
        result["latency_litert"] = _litert_latency(
            root / "seven-tflite-int8-segments", root / "seven-tflite-int8", stitched, x, args.runs
        )
        print("litert", result["latency_litert"], flush=True)
        result["latency_litert_calls"] = _litert_latency(
            root / "seven-tflite-int8-segments each", root / "seven-tflite-int8", stitched, x, args.runs
        )
        print("litert, a call per segment", result["latency_litert_calls"], flush=True)
        result["latency_tflm_host"] = _tflm_latency(
            root / "seven-tflm-int8", root / "seven-tflite-int8" / "variants.tflite", stitched, x, args.runs
        )
        result["latency_tflm_host_every_block"] = _tflm_latency(
            root / "seven-tflm-int8 every-block", root / "seven-tflite-int8" / "variants.tflite", stitched, x, args.runs
        )
        print("tflm", result["latency_tflm_host"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
