"""The benchmarks' FLOPs Pareto filter (bench/benchlib/pareto.py): dominator reasons, ties and the anchors' line."""

from __future__ import annotations

import pytest
from benchlib.pareto import anchor_line, pareto_reasons

ANCHORS = {"small": {"flops": 2.1e6, "val_accuracy": 0.961}, "large": {"flops": 34.7e6, "val_accuracy": 0.982}}


def test_pareto_reasons_name_the_dominator_in_flops_and_accuracy() -> None:
    got = pareto_reasons(ANCHORS, {"L0-S0": (2.6e6, 0.949), "L3-S2": (20e6, 0.978), "L4-S2": (25e6, 0.975)})
    assert got["L0-S0"] == "dominated by small: 2.10 MFLOPs at 96.1 % vs 2.60 MFLOPs at 94.9 %"
    assert got["L3-S2"] is None
    assert got["L4-S2"] == "dominated by L3-S2: 20.00 MFLOPs at 97.8 % vs 25.00 MFLOPs at 97.5 %"


def test_pareto_ties_are_not_domination_and_the_line_interpolates() -> None:
    assert pareto_reasons(ANCHORS, {"a": (2.1e6, 0.961)})["a"] is None  # equal to the small anchor: not strictly worse
    assert anchor_line({k: {**v, "test_accuracy": v["val_accuracy"]} for k, v in ANCHORS.items()}, 2.1e6) == 0.961
    mid = anchor_line({k: {**v, "test_accuracy": v["val_accuracy"]} for k, v in ANCHORS.items()}, 18.4e6)
    assert mid == pytest.approx((0.961 + 0.982) / 2)
