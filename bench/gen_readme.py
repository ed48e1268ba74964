"""Write ``bench/README.md`` from the benchmark results in ``bench/results/`` (JSON and JSON lines).

Each section gives the benchmark's question, the command that wrote its file, its goal, the result tables and one
line of conclusion. The question, command and goal live in :data:`SECTIONS`, keyed by file name; every figure is
computed from the file (``benchlib/tables.py``). A results file without a section, or a section without its file, is an
error, so the page always covers exactly what ``bench/results/`` holds. The output is deterministic.

    python bench/gen_readme.py            # write bench/README.md
    python bench/gen_readme.py --check    # exit 1 when bench/README.md is not what this script writes
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchlib import tables as bt  # bench/ is on the path: the script's folder, and pytest's pythonpath

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"

#: What each row of ``tune_ideas.jsonl`` changes (``overrides`` holds the exact settings).
IDEAS = {
    "default": "the earlier default: 10 epochs, constant rate, early stop after 4, CE + 0.8 KD at T 2",
    "cos": "cosine rate over 20 epochs, no early stop",
    "cos_kd1t4": "cosine, 20 epochs, pure KD at T 4: **the current default**",
    "cos_kd1t4_wd": "current default + weight decay 0.05",
    "cos_wd_ls": "cosine, 20 epochs + weight decay 0.05 + label smoothing 0.1",
    "in3_cos_kd1t4": "current default on the inputs + 3 copies shifted by up to 2 px, 5 epochs (the steps of 20)",
    "in3_cos": "cosine on the inputs + 3 copies shifted by up to 2 px, 5 epochs (the steps of 20)",
    "cos_kd1t4_ema": "current default, adapter weights averaged (EMA 0.99)",
    "cos_kd1t6": "current default at T 6",
    "cos30_kd1t4": "current default with 30 epochs",
    "cos10p4_kd1t4": "current default with 10 epochs, early stop after 4",
    "cos15p5_kd1t4": "current default with 15 epochs, early stop after 5",
    "residual": "current default with the `residual` adapter (its 3x3 branch adds FLOPs: line +0.03 to +0.11)",
    "lowrank-dw": "current default with the `lowrank-dw` adapter",
    "suffix-recalibrate-after": "current default, then suffix BatchNorm statistics re-estimated on stitched features",
    "suffix-recalibrate-before": "suffix BatchNorm statistics re-estimated before distillation",
    "suffix-norm": "the suffix's BatchNorm scale and shift train too",
    "suffix-first-block": "the suffix's first block trains too",
    "mnist10k": "current default on `mnist10k`: 8,000 training digits, same donors, line and test split",
}


@dataclass(frozen=True)
class Section:
    """One benchmark's page section: what it asks, how to run it, its goal, and its tables.

    ``manual``: why ``make bench`` does not run ``command`` (empty: it does, exactly as written).
    """

    title: str
    question: str
    command: str
    goal: str
    body: Callable[[object], list[str]]
    manual: str = ""


_TUNING_Q = (
    "Does tuning only the adapter (donors frozen, prefix features cached) cost a fraction of tuning the whole "
    "stitched network, at nearly its accuracy?"
)
_TUNING_GOAL = "time ratio adapter-only / end to end <= 0.2 (caching included); accuracy ratio >= 0.97."

SECTIONS: dict[str, Section] = {
    "cka.json": Section(
        "CKA cost",
        "What does the CKA matrix cost beyond the forward passes it needs anyway?",
        "python bench/bench_cka.py",
        "CKA time / plain forward time of both models <= 1.25.",
        bt.cka,
    ),
    "stitch_tuning.json": Section(
        "Adapter-only against end-to-end tuning",
        _TUNING_Q,
        "python bench/bench_stitch_tuning.py --epochs 10 --train 3000",
        _TUNING_GOAL,
        bt.stitch_tuning,
    ),
    "stitch_tuning_mnist10k.json": Section(
        "Adapter-only against end-to-end tuning on mnist10k",
        _TUNING_Q + " The same with 5,000 more training digits.",
        "python bench/bench_stitch_tuning.py --epochs 10 --train 8000 --dataset mnist10k "
        "--out bench/results/stitch_tuning_mnist10k.json",
        _TUNING_GOAL,
        bt.stitch_tuning,
    ),
    "stitch_tuning_3ep.json": Section(
        "Adapter-only against end-to-end tuning, short runs",
        _TUNING_Q + " The same with 3 epochs on 1,500 images, where fixed costs weigh most.",
        "python bench/bench_stitch_tuning.py --epochs 3 --train 1500 --out bench/results/stitch_tuning_3ep.json",
        _TUNING_GOAL,
        bt.stitch_tuning,
    ),
    "tune_ideas.jsonl": Section(
        "Tuning ideas",
        "Which adapter-only tuning options put more stitched variants of the demo pair above the anchors' line?",
        "python bench/bench_tune_ideas.py --ideas NAME=JSON ... [--dataset mnist10k]",
        "3 of the 5 candidates strictly above the anchors' line on the 3-seed mean, both donors frozen.",
        partial(bt.tune_ideas, ideas=IDEAS),
        "the ideas it compares are its arguments, each a set of tuning settings",
    ),
    "recipes.json": Section(
        "Adapters x tuning recipes",
        "Which adapter and recipe, per model pair (CNN and transformer, both orders), against end-to-end tuning?",
        "python bench/bench_recipes.py --pairs LARGE:SMALL [--order small-large] --adapters ... --recipes ... "
        "--multi-seed ADAPTER/RECIPE --merge",
        "stitched variants above the anchors' line; accuracy ratio to end to end >= 0.97.",
        bt.recipes,
        "the pairs, adapters and recipes it compares are its arguments",
    ),
    "all_pairs.json": Section(
        "Every joinable pair",
        "Does the CKA plan leave a better stitch out?",
        "python bench/bench_all_pairs.py",
        "no unplanned pair above the anchors' line that the plan misses.",
        bt.all_pairs,
    ),
    "export.json": Section(
        "Export targets",
        "What does each target cost in bytes, export time and accuracy, and how much does one bundle share?",
        "python bench/bench_export.py",
        "one multi-signature bundle <= 1.10x the large + small + adapter bytes; accuracy within each target's parity.",
        bt.export,
    ),
    "segments.json": Section(
        "Segments",
        "Do segments store every shared block once, on LiteRT and TFLite Micro, what does running a chain cost "
        "against one graph, and how small is the patch that adds a variant?",
        "python bench/bench_segments.py",
        "bundle / (large + small + adapters) <= 1.05; chain / one graph latency <= 1.05; patch / bundle <= 0.15.",
        bt.segments,
    ),
    "firmware.json": Section(
        "Firmware",
        "Does every MCU variant run in a real TensorFlow Lite Micro firmware (host, Cortex-M4 and Cortex-M55 under "
        "QEMU), bit-identical to TFLM's Python interpreter, in the flash the manifest states and the arena estimated "
        "for the core, and does a second firmware build reuse the TFLM library?",
        "restnet-compile build --profile mcu --out dist; restnet-compile build --profile bench/firmware_profile.yaml "
        "--target tflm-int8 --config bench/firmware_seven.yaml --out dist7; python bench/bench_firmware.py --bundle "
        "dist7/mcu-roomy-tflm-int8; python bench/bench_firmware.py --update --bundle dist/mcu-tflm-int8 (the "
        "rebuild is the demo bundle's; $RESTNET_TFLM_DIR set)",
        "reference kernels bit-identical on every variant, CMSIS-NN top-1 agreement 100 %; model data in the ELF "
        "<= 1.02 x the bundle's model bytes; measured arena / estimate in [0.9, 1.0] on the Cortex-M4; second build "
        "/ first <= 0.2.",
        bt.firmware,
        "it needs a TensorFlow Lite Micro tree, the Arm GNU toolchain and QEMU, and a built mcu bundle",
    ),
    "switch.json": Section(
        "Variant switching",
        "What does switching to another variant of an open bundle cost, against loading that variant's own file?",
        "python bench/bench_switch.py",
        "extra cost of a switch / cost of a load <= 0.01.",
        bt.switch,
    ),
    "latency.json": Section(
        "Latency model",
        "How close is the roofline latency model to measured latency, before and after calibration?",
        "python bench/bench_latency.py --out bench/results/latency.json",
        "median absolute error <= 15 % and Spearman rank correlation >= 0.9, leave one out.",
        bt.latency,
    ),
    "profiles.json": Section(
        "What each profile ships",
        "From the same stitched variants, what does each device profile ship, and why?",
        "python bench/bench_profiles.py",
        "each device's decision follows from its limits and latency model.",
        bt.profiles,
    ),
    "fail_fast.json": Section(
        "Fail fast",
        "How soon does a build for a profile that nothing fits stop, against the same build that fits?",
        "python bench/bench_fail_fast.py",
        "time to exit 3 / time of the feasible build <= 0.05.",
        bt.fail_fast,
    ),
    "fleet.json": Section(
        "One build for a fleet",
        "What does one build for mcu + phone + jetson cost against three separate builds, and are the bundles the "
        "same?",
        "python bench/bench_fleet.py",
        "fleet time / separate builds' time <= 0.5, every bundle byte-identical to its separate build's.",
        bt.fleet,
    ),
    "family.json": Section(
        "A family of three anchors",
        "Does one build of three demo CNNs, stitched along their neighbours, put stitches above the anchors' line in "
        "each interval, store every weight once, and cost less than the two pair builds it replaces?",
        "python bench/bench_family.py",
        ">= 2 stitches above the anchors' line per interval; bytes <= 1.05 x (anchors + adapters) on tflite-int8 "
        "and tflm-int8; family time <= 0.6 x the two pair builds', same adapters; `models:` of two byte-identical "
        "to `large` / `small`.",
        bt.family,
    ),
    "fashion.json": Section(
        "Fashion-MNIST, two foreign architectures",
        "On real data where models differ (Fashion-MNIST), do stitches of two torchvision architectures trained "
        "here (resnet18 and shufflenet_v2_x0_5) ship above the anchors' line, keep their accuracy in int8, and are "
        "they costed right before export?",
        "python bench/bench_fashion.py",
        ">= 3 shipped stitches >= 1 s.e. above the anchors' line (test); int8 within 1 point of fp32 for every "
        "shipped variant, no exit 4; estimated size and RAM within 10 % of the exported figures.",
        bt.fashion,
    ),
    "ray.json": Section(
        "Ray executor",
        "What does running the build's jobs as Ray tasks on a local 2-CPU instance cost against the local executor, "
        "and are the bytes the same?",
        "python bench/bench_ray.py",
        "bytes identical; the time ratio is reported.",
        bt.ray,
    ),
    "cluster.json": Section(
        "Ray cluster",
        "Does a tuning-bound build (at least 4 candidates) run faster on a real two-node Ray cluster of 1 CPU per "
        "node than on one node of 1 CPU, with the same bytes?",
        "python bench/bench_cluster.py --epochs 40 --candidates 4 --dataset mnist10k",
        "speed-up >= 1.7x, bytes identical.",
        bt.cluster,
    ),
    "stream_memory.json": Section(
        "Memory as the dataset grows",
        "How does the peak memory of a 224 px build grow from 400 to 6,400 images, now that data are read per batch "
        "and tuning features are kept under a memory budget?",
        "python bench/bench_stream_memory.py",
        "peak RSS(6,400 images) / peak RSS(400 images) <= 1.3.",
        bt.stream_memory,
    ),
    "photo_digits.json": Section(
        "Photo digits",
        "Does `restnet-compile run --input` read a photographed-looking digit written on paper (300 x 200 RGB, "
        "uneven light, sensor noise, slight rotation) through the image policy the demo bundle records?",
        "python bench/bench_photo_digits.py --bundle dist/phone-tflite-int8",
        "every picture read right; the same variant on a plain resize to 28 x 28 is reported beside it.",
        bt.photo_digits,
        "it reads the demo bundle `make demo` builds",
    ),
    "feature_store.json": Section(
        "Feature stores",
        "What does keeping tuning's prefix features in a file (fp32 or fp16), or recomputing them, cost per epoch "
        "against memory, and what does it change in the tuned adapter?",
        "python bench/bench_feature_store.py",
        "mmap (fp32) gives the ram store's adapter byte for byte; the time ratios and the fp16 / recompute accuracy "
        "are reported.",
        bt.feature_store,
    ),
}

HEADER = [
    "# Benchmarks",
    "",
    "<!-- Generated by bench/gen_readme.py from bench/results/; edit that script, not this file. -->",
    "",
    "Each benchmark writes one file in `bench/results/`; this page is generated from those files. `make bench` runs "
    "each section's command, but those listed just below, and regenerates the page. Times are ratios measured side by"
    " side in one run on a shared 2-core CPU; absolute seconds are context only. Test accuracy is on the 1,000-image "
    "test split (binomial standard error about 0.5 points at 97 %); validation accuracy on the 500-image validation "
    "split. The **anchors' line** is the straight line between the small and the large model in (FLOPs, test "
    "accuracy): a stitched variant earns its place when it is above it.",
    "",
]


def load(path: Path) -> object:
    """A results file: one JSON document, or a list of JSON lines for ``.jsonl``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def render(results: Path = RESULTS) -> str:
    """The whole page for the files in ``results``.

    Raises:
        ValueError: a results file has no section, or a section's file is missing.
    """
    present = sorted(p.name for p in results.iterdir() if p.suffix in (".json", ".jsonl"))
    unknown = sorted(set(present) - set(SECTIONS))
    missing = sorted(set(SECTIONS) - set(present))
    if unknown or missing:
        raise ValueError(f"results without a section: {unknown}; sections without results: {missing}")
    lines = list(HEADER)
    manual = [f"- {s.title} (`{name}`): {s.manual}." for name, s in SECTIONS.items() if s.manual]
    lines += ["Not run by `make bench`, each for its reason:", "", *manual, ""] if manual else []
    for name, s in SECTIONS.items():
        lines += [f"## {s.title}", "", f"**Question.** {s.question}", "", f"**Command.** `{s.command}`"]
        lines += ["", f"**Goal.** {s.goal}", "", f"**Data.** [`results/{name}`](results/{name})", ""]
        lines += [*s.body(load(results / name)), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def make_commands() -> list[str]:
    """The commands ``make bench`` runs: every section's that is not manual, in page order."""
    return [s.command for s in SECTIONS.values() if not s.manual]


def main() -> int:
    """Write or check ``bench/README.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when bench/README.md differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = README.read_text(encoding="utf-8") if README.is_file() else ""
        if current != text:
            print(f"{README} is out of date: run python bench/gen_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text, encoding="utf-8")
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
