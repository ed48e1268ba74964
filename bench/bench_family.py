"""A family of three demo CNNs in one build against the two pair builds it replaces: stitches above the anchors'
line, bundle bytes, build time, and the K = 2 family against the pair form (JSON).

Usage: ``python bench/bench_family.py [--epochs 20] [--candidates 8] [--out bench/results/family.json]``.
The demo family ``demo-large-cnn``, ``demo-mid-cnn`` and ``demo-small-cnn`` on ``mnist10k`` for the phone profile,
with the default tuning and the default (Pareto) selection, one torch thread, every build its own process:

* time: the family build against the two pair builds it replaces (large-mid and mid-small), each with a fresh
  cache folder of its own; the ratio is of CPU time (``lib/cli_builds.py`` says why), the wall-time ratio beside it.
  Every stitch of the family is compared with the same stitch of its pair's build (validation and test accuracy).
* line: in the family's manifest, the stitched variants strictly above the anchors' line (test accuracy against
  FLOPs, piecewise linear through the three anchors), per interval of neighbouring anchors;
* bytes: the family built again from its cache with ``selection: feasible`` (every feasible variant ships) on
  ``tflite-int8`` and ``tflm-int8``: the model files' bytes against the three anchors' own models plus every
  shipped adapter as the int8 file stores it (int8 weights, int32 biases with the BatchNorm folded in: exactly the
  constants of a TFLite Micro adapter segment); the ratio to the adapters' parameter count at one byte each is
  kept beside it;
* K = 2: ``models: [demo-small-cnn, demo-large-cnn]`` against ``large`` / ``small``, both ``--no-cache`` with one
  tuning epoch and two candidates on ``tflm-int8``: every file of both bundles and both archives by sha256;
* all pairs: the same family with ``pairs: all`` (the large and the small model stitched too), its own fresh cache:
  CPU time against the family's, and its stitches against the line.

``--parts all-pairs`` or ``--parts bytes`` runs that part alone (bytes: with a fresh family cache of its own) and
replaces it in an existing results file.

Goals: at least 2 stitches above the line in each interval; bytes <= 1.05 x (anchors + adapters) on both targets;
family CPU time <= 0.6 x the two pair builds', with the same adapters' accuracy; K = 2 byte-identical.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.cli_builds import Run, _children_cpu, build, bundle_digests, write_config
from benchlib.files import write_json
from torch import nn

from restnet_compile.bundle.manifest import load_manifest
from restnet_compile.models import create_model
from restnet_compile.report.anchors_line import above_per_interval, distances
from restnet_compile.stitching.adapters import ADAPTERS

LARGE, MID, SMALL = "demo-large-cnn", "demo-mid-cnn", "demo-small-cnn"
GOALS = {"above_per_interval": 2, "bytes_ratio": 1.05, "time_ratio": 0.6}


def cached_build(args: list[str], cwd: Path, cache: Path) -> Run:
    """``restnet-compile build ARGS --cache-dir CACHE --quiet --json`` in ``cwd``, timed."""
    cmd = [sys.executable, "-m", "restnet_compile", "build", *args, "--cache-dir", str(cache), "--quiet", "--json"]
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return Run(round(seconds, 2), round(cpu, 2), proc.returncode, summary, proc.stderr)


def _bundle(run: Run, cwd: Path) -> Path:
    if run.code or not isinstance(run.summary, dict):
        raise SystemExit(f"build failed ({run.code}):\n{run.stderr[-3000:]}")
    return cwd / run.summary["bundle"]


def _models(flags: list[str]) -> list[str]:
    return [a for name in flags for a in ("--model", name)]


def _stored_bytes(module: nn.Module) -> int:
    """An adapter's constants as an int8 target stores them: each convolution's and linear layer's int8 weights and
    int32 bias (one per output channel; a BatchNorm after it folds into them), any other parameter one byte each."""
    total, folded = 0, set()
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            total += m.weight.numel() + 4 * m.weight.shape[0]
            folded |= {id(p) for p in m.parameters()}
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            folded |= {id(p) for p in m.parameters()}
    return total + sum(p.numel() for p in module.parameters() if id(p) not in folded)


def _adapter_bytes(bundle: Path) -> dict[str, int]:
    """Every shipped stitch's adapter: ``params`` (its parameters, one byte each: the stitch's parameters less its
    prefix's, suffix's and head's) and ``stored`` (as the int8 file stores it, :func:`_stored_bytes`)."""
    m = load_manifest(bundle)
    names = {a.id: a.model.name for a in m.models.anchors or ()} or {
        "large": m.models.large.name,
        "small": m.models.small.name,
    }
    params = stored = 0
    for v in m.shipped():
        s = v.stitch
        if v.kind != "stitched" or s.front is None or s.front_block is None or s.back_block is None:
            continue
        back = s.back or ("small" if s.front == "large" else "large")
        front_model, back_model = create_model(names[s.front]), create_model(names[back])
        donors = [*front_model.blocks[: s.front_block + 1], *back_model.blocks[s.back_block + 1 :], back_model.head]
        params += v.params - sum(p.numel() for d in donors for p in d.parameters())
        src, dst = front_model.feature_specs()[s.front_block], back_model.feature_specs()[s.back_block]
        stored += _stored_bytes(ADAPTERS.get(s.adapter)(src, dst))
    return {"params": params, "stored": stored}


def _bytes(bundle: Path) -> dict:
    m = load_manifest(bundle)
    model_files = sum((bundle / f).stat().st_size for f in m.files if f.endswith(".tflite"))
    anchors = {v.id: v.model_bytes for v in m.variants if v.kind.startswith("anchor-")}
    adapters = _adapter_bytes(bundle)
    reference = sum(anchors.values()) + adapters["stored"]
    return {
        "variants_shipped": [v.id for v in m.shipped()],
        "model_file_bytes": model_files,
        "anchors_bytes": anchors,
        "adapters_stored_bytes": adapters["stored"],
        "adapters_params": adapters["params"],
        "reference_bytes": reference,
        "ratio": round(model_files / reference, 4),
        "ratio_params_one_byte": round(model_files / (sum(anchors.values()) + adapters["params"]), 4),
        "goal_met": model_files <= GOALS["bytes_ratio"] * reference,
    }


def _same_stitches(family: Path, pairs: dict[str, Path]) -> list[dict]:
    """Each family stitch beside the same stitch of its pair's build (ids there: ``L<i>-S<j>``)."""
    fam = {v.id: v for v in load_manifest(family).variants if v.kind == "stitched"}
    rows = []
    for name, bundle in pairs.items():
        big, little = name.split("-")
        for v in load_manifest(bundle).variants:
            if v.kind != "stitched":
                continue
            fid = v.id.replace("L", big, 1).replace("S", little, 1)
            f = fam.get(fid)
            rows.append(
                {
                    "family_id": fid,
                    "pair_id": v.id,
                    "pair_val": v.val_accuracy_fp32,
                    "family_val": f.val_accuracy_fp32 if f else None,
                    "pair_test": v.accuracy_fp32,
                    "family_test": f.accuracy_fp32 if f else None,
                    "same": f is not None
                    and (f.val_accuracy_fp32, f.accuracy_fp32) == (v.val_accuracy_fp32, v.accuracy_fp32),
                }
            )
    return rows


def feasible_bytes(settings: dict, work: Path) -> dict:
    """The family with ``selection: feasible`` on each int8 target, from the family's cache (``work/c-fam``): its
    model files' bytes against the anchors' own and the adapters'."""
    feasible = str(write_config(work / "feasible.yaml", {**settings, "selection": "feasible"}))
    sizes = {}
    for target in ("tflite-int8", "tflm-int8"):
        flags = ["--config", feasible, "--profile", "phone", "--target", target, "--out", f"feasible-{target}"]
        run = cached_build([*flags, *_models([SMALL, LARGE, MID])], work, work / "c-fam")
        sizes[target] = _bytes(_bundle(run, work))
    return sizes


def all_pairs(settings: dict, work: Path, family_cpu: float) -> dict:
    """The family with ``pairs: all``: its CPU time against the neighbours' family's, and the line."""
    config = str(write_config(work / "all.yaml", {**settings, "pairs": "all"}))
    run = cached_build(
        ["--config", config, "--profile", "phone", *_models([SMALL, LARGE, MID]), "--out", "all"], work, work / "c-all"
    )
    manifest = load_manifest(_bundle(run, work))
    return {
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "cpu_over_neighbours": round(run.cpu_seconds / family_cpu, 3),
        "pairs": [p.name for p in manifest.stitching.pairs or ()],
        "above_per_interval": above_per_interval(manifest),
        "shipped": [v.id for v in manifest.shipped()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="tuning epochs")
    ap.add_argument("--candidates", type=int, default=8, help="most stitch candidates per pair")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "family.json")
    ap.add_argument(
        "--parts", choices=["all", "all-pairs", "bytes"], default="all", help="everything, or one part alone"
    )
    args = ap.parse_args()
    settings = {
        "dataset": "mnist10k",
        "tune": {"epochs": args.epochs},
        "plan": {"max_candidates": args.candidates},
        "threads": 1,
    }
    if args.parts != "all":
        result = json.loads(args.out.read_text())
        with tempfile.TemporaryDirectory(prefix="bench-family-") as tmp:
            if args.parts == "all-pairs":
                part = "all_pairs"
                result[part] = all_pairs(settings, Path(tmp), result["time"]["family"]["cpu_seconds"])
            else:
                part = "bytes"
                result[part] = feasible_bytes(settings, Path(tmp))
        write_json(args.out, result)
        print(json.dumps(result[part], indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="bench-family-") as tmp:
        work = Path(tmp)
        config = str(write_config(work / "build.yaml", settings))
        phone = ["--config", config, "--profile", "phone"]
        pair_lm = cached_build([*phone, "--large", LARGE, "--small", MID, "--out", "pair-LM"], work, work / "c-lm")
        pair_ms = cached_build([*phone, "--large", MID, "--small", SMALL, "--out", "pair-MS"], work, work / "c-ms")
        family = cached_build([*phone, *_models([SMALL, LARGE, MID]), "--out", "family"], work, work / "c-fam")
        fam_dir = _bundle(family, work)
        pairs = {"L-M": _bundle(pair_lm, work), "M-S": _bundle(pair_ms, work)}
        sizes = feasible_bytes(settings, work)
        fast = {"dataset": "mnist5k", "tune": {"epochs": 1}, "plan": {"max_candidates": 2}, "threads": 1}
        k2 = ["--config", str(write_config(work / "k2.yaml", fast)), "--profile", "mcu", "--target", "tflm-int8"]
        as_pair = build([*k2, "--large", LARGE, "--small", SMALL, "--out", "k2-pair"], work)
        as_models = build([*k2, *_models([SMALL, LARGE]), "--out", "k2-models"], work)
        digests = [bundle_digests(r.summary, work) for r in (as_pair, as_models) if isinstance(r.summary, dict)]
        manifest = load_manifest(fam_dir)
        counts = above_per_interval(manifest)
        stitches = _same_stitches(fam_dir, pairs)
        pairs_cpu = pair_lm.cpu_seconds + pair_ms.cpu_seconds
        result = {
            "machine": platform.processor() or platform.machine(),
            "settings": settings,
            "goals": GOALS,
            "anchors": [
                {"id": a.id, "model": a.model.name, "mflops": round(a.flops / 1e6, 3), "test": a.model.test_accuracy}
                for a in manifest.models.anchors or ()
            ],
            "line": {
                "above_per_interval": counts,
                "goal_met": all(n >= GOALS["above_per_interval"] for n in counts.values()),
                "stitches": [
                    {
                        "id": d.id,
                        "mflops": round(d.flops / 1e6, 3),
                        "test": d.accuracy,
                        "interval": d.interval,
                        "above_pp": None if d.above_by is None else round(100 * d.above_by, 2),
                    }
                    for d in distances(manifest)
                ],
                "shipped": [v.id for v in manifest.shipped()],
            },
            "bytes": sizes,
            "time": {
                "family": {"seconds": family.seconds, "cpu_seconds": family.cpu_seconds},
                "pair_large_mid": {"seconds": pair_lm.seconds, "cpu_seconds": pair_lm.cpu_seconds},
                "pair_mid_small": {"seconds": pair_ms.seconds, "cpu_seconds": pair_ms.cpu_seconds},
                "cpu_ratio": round(family.cpu_seconds / pairs_cpu, 3),
                "wall_ratio": round(family.seconds / (pair_lm.seconds + pair_ms.seconds), 3),
                "goal_met": family.cpu_seconds <= GOALS["time_ratio"] * pairs_cpu,
                "same_adapters_accuracy": all(r["same"] for r in stitches),
                "stitches": stitches,
            },
            "k2": {
                "identical": len(digests) == 2 and digests[0] == digests[1],
                "files": len(digests[0]) if digests else 0,
                "codes": [as_pair.code, as_models.code],
            },
        }
        result["all_pairs"] = all_pairs(settings, work, family.cpu_seconds)
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("line", "bytes", "time", "k2")}, indent=1)[:6000])


if __name__ == "__main__":
    main()
