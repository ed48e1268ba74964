"""A plan with no stitch candidate says why, one line per pair of blocks the rule rejected."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from restnet_compile.config.build import PlanSettings
from restnet_compile.models import FeatureSpec
from restnet_compile.stitching import plan_candidates, rejections


def m(c: int, h: int) -> FeatureSpec:
    return FeatureSpec("map", (c, h, h))


# The prefix donor halves its resolution in its stem; at every depth the suffix donor's grid is finer.
FRONT = [m(16, 14), m(32, 7), m(64, 4)]
BACK = [m(16, 56), m(32, 28), m(64, 14)]


def test_every_rejected_pair_is_one_line_naming_the_shapes() -> None:
    rule = PlanSettings()
    assert plan_candidates(np.ones((3, 3)), FRONT, BACK, rule) == []
    lines = rejections(FRONT, BACK, rule)
    ids = [line.partition(":")[0] for line in lines]
    assert ids == ["L0-S0", "L0-S1", "L1-S0", "L1-S1"]
    assert all("finer than the prefix's" in line for line in lines)
    assert lines[0] == (
        "L0-S0: adapter conv1x1 cannot resize map 16x14x14 to map 16x56x56: the suffix block's grid 56x56 is finer "
        "than the prefix's 14x14 (they only pool down)"
    )


def test_pairs_the_profile_cannot_run_and_cuts_without_a_pair_are_said_too() -> None:
    front, back = [m(16, 28), m(32, 14), m(64, 7)], [m(16, 28), m(32, 14), m(64, 7)]
    rule = PlanSettings(depth_band=0.01, min_suffix_blocks=2)
    misses = {(0, 0): "RAM 600 KiB > 512 KiB", (1, 1): "latency p90 95.00 ms > 90 ms"}
    lines = rejections(front, back, rule, misses)
    assert lines == [
        "L0-S0: does not fit the profile: RAM 600 KiB > 512 KiB",
        "L1: no S block lies within depth band 0.01 and leaves 2 suffix block(s) after it",
    ]
    assert rejections([m(8, 8)], back, rule) == ["the prefix model has 1 block: no cut leaves a block for the suffix"]


def test_small_large_order_names_the_small_prefix_first() -> None:
    rule = PlanSettings(order="small-large")
    lines = rejections(FRONT, BACK, rule)
    assert [line.partition(":")[0] for line in lines] == ["S0-L0", "S0-L1", "S1-L0", "S1-L1"]


def test_the_lines_reach_the_manifest_report_and_build_output() -> None:
    from restnet_compile.bundle.manifest import read_manifest, seal
    from restnet_compile.cli.build import rejected_text, summary
    from restnet_compile.report.markdown import render_report

    sample = Path(__file__).resolve().parents[1] / "data" / "phone-tflite-int8.manifest.json"
    lines = tuple(rejections(FRONT, BACK, PlanSettings()))
    base = read_manifest(sample.read_bytes())
    assert base.stitching.rejected is None and rejected_text(base) == ""  # a build with candidates: nothing said
    stitching = dataclasses.replace(base.stitching, rejected=lines)
    manifest = read_manifest(seal(dataclasses.replace(base, stitching=stitching)))
    assert manifest.stitching.rejected == lines  # written and read back
    said = rejected_text(manifest).splitlines()
    assert said == ["", "no stitch candidate; pairs of blocks rejected:", *(f"  {line}" for line in lines)]
    report = render_report(manifest, {})
    assert "## No stitch candidate" in report and all(f"- {line}" in report for line in lines)
    result = SimpleNamespace(bundle_dir=Path("b"), archive=Path("b.tar.gz"), manifest=manifest, cache={})
    assert summary(result)["rejected_pairs"] == list(lines)  # type: ignore[arg-type]
