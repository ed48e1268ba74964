"""Export benchmark: time per variant and target, one-bundle size vs separate files, deployed vs fp32 accuracy.

Usage: ``python bench/bench_export.py [--out bench/results/export.json] [--targets tflite-int8 onnx-fp32 ...]``.
Builds the demo pair's variants once (every feasible candidate on the phone profile), then exports them to each
target, measuring in one run. Sizes are bytes; times are seconds on this machine and are only compared with each
other (ratios), never quoted alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from restnet_compile._util.torch_state import deterministic
from restnet_compile.bundle.manifest import MANIFEST, write_manifest
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import load_profile, load_target
from restnet_compile.export import EXPORTERS
from restnet_compile.export.graph_cost import graph_cost, variant_model
from restnet_compile.export.parity import check_parity, torch_logits
from restnet_compile.pipeline.driver import analyze_and_stitch
from restnet_compile.pipeline.manifest_build import build_manifest
from restnet_compile.pipeline.state import Analysis
from restnet_compile.runtime import Bundle

MODEL_SUFFIXES = (".tflite", ".onnx", ".bin")
ALL_TARGETS = ["tflite-int8", "tflite-fp32", "tflite-fp16", "tflm-int8", "onnx-fp32", "onnx-int8", "onnx-fp16"]


def _export(a: Analysis, target_name: str, variants: dict, root: Path) -> tuple[float, int, dict]:
    target = load_target(target_name)
    out, work = root / "out", root / "work"
    out.mkdir(parents=True)
    work.mkdir()
    exporter = EXPORTERS.get(target.exporter)()
    start = time.perf_counter()
    exported = exporter.export(variants, a.large.input_shape, a.splits.calib.images, target, out, work)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.iterdir() if f.suffix in MODEL_SUFFIXES)
    segments = {s.id: s for ev in exported.values() for s in ev.chain}  # tflm-int8: the manifest lists each segment
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
    write_manifest(out / MANIFEST, manifest)
    bundle = Bundle.open(out)
    test = a.splits.test
    accuracy = {
        vid: check_parity(bundle, vid, torch_logits(m, test.images), test.images, test.labels, target).accuracy
        for vid, m in variants.items()
    }
    return seconds, size, accuracy


def main() -> None:
    """Run the benchmark and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/export.json"))
    parser.add_argument("--targets", nargs="*", default=ALL_TARGETS, choices=ALL_TARGETS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = BuildConfig(profile="phone", selection="feasible", seed=args.seed)
    profile = load_profile("phone")
    with deterministic(cfg.seed, cfg.threads):
        a = analyze_and_stitch(cfg, profile, load_target("tflite-int8"), lambda _m: None)
    variants = {v.id: v.module for v in a.variants}
    result: dict = {"seed": args.seed, "variants": list(variants), "targets": {}}
    fp32_acc = {v.id: v.test_accuracy for v in a.variants}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.targets:
            seconds, size, acc = _export(a, name, variants, Path(tmp) / name)
            result["targets"][name] = {
                "export_seconds_per_variant": round(seconds / len(variants), 2),
                "bundle_bytes": size,
                "accuracy": acc,
                "accuracy_drop_vs_torch_fp32": {k: round(fp32_acc[k] - acc[k], 4) for k in acc},
            }
            print(name, result["targets"][name], flush=True)
        if "tflite-int8" in args.targets:  # one multi-signature file vs K separate files, same converter
            separate = {
                vid: _export(a, "tflite-int8", {vid: m}, Path(tmp) / f"sep-{vid}")[1] for vid, m in variants.items()
            }
            adapters = sum(  # int8 weights; int32 biases are a rounding error at this size
                sum(p.numel() for p in v.module.adapter.parameters()) for v in a.variants if v.kind == "stitched"
            )
            bundle = result["targets"]["tflite-int8"]["bundle_bytes"]
            anchors = separate["large"] + separate["small"]
            result["tflite_int8_sharing"] = {
                "separate_files_bytes": separate,
                "separate_total_bytes": sum(separate.values()),
                "bundle_over_separate": round(bundle / sum(separate.values()), 3),
                "anchors_int8_bytes": anchors,
                "adapters_int8_bytes_estimate": adapters,
                "bundle_over_anchors_plus_adapters": round(bundle / (anchors + adapters), 3),
                "goal_bundle_le_1.10x_anchors_plus_adapters": bundle <= 1.10 * anchors + adapters,
            }
            print(result["tflite_int8_sharing"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
