"""Selection against the validation split's noise: flagged drops, and the noise margin ``selection_noise``."""

from __future__ import annotations

import math

import pytest

from restnet_compile.config.device import load_profile
from restnet_compile.selection.rule import Option, describe_rule, noise_margin, select

PHONE = load_profile("phone")  # min_latency_gain 0: every step of the front ships


def opt(vid: str, latency: float, acc: float, n: int = 500) -> Option:
    return Option(vid, latency, 1000, 1000, acc, flops=int(latency * 1e6), val_samples=n)


def _shipped(options: list[Option], z: float) -> list[str]:
    return [d.variant_id for d in select(options, PHONE, True, z) if d.selected]


def test_margin_is_the_standard_error_of_the_difference() -> None:
    a, b = opt("a", 1.0, 0.976), opt("b", 2.0, 0.976)
    assert noise_margin(a, b, 1.0) == pytest.approx(math.sqrt(2 * 0.976 * 0.024 / 500))
    assert noise_margin(a, b, 0.0) == 0.0
    assert noise_margin(opt("a", 1.0, 0.9, n=0), b, 1.0) == 0.0  # validation size unknown: no margin


def test_exact_front_flags_a_drop_within_the_noise() -> None:
    small, tie, worse = opt("small", 0.16, 0.976), opt("L2-S1", 1.14, 0.976), opt("L1-S1", 0.81, 0.930)
    decisions = {d.variant_id: d for d in select([small, tie, worse], PHONE, True, 0.0)}
    assert not decisions["L2-S1"].selected
    assert "within the validation noise, 1 s.e. = 1.0%" in decisions["L2-S1"].reasons[0]
    assert "noise" not in decisions["L1-S1"].reasons[0]  # 4.6 points worse: a real difference


def test_noise_margin_keeps_what_the_validation_split_cannot_separate() -> None:
    options = [opt("small", 0.16, 0.976), opt("L2-S1", 1.14, 0.978), opt("L1-S1", 0.81, 0.930)]
    assert _shipped(options, 0.0) == ["small", "L2-S1"]
    options[1] = opt("L2-S1", 1.14, 0.972)  # 0.4 points below small: within one standard error (1.0 point)
    assert _shipped(options, 0.0) == ["small"]
    assert _shipped(options, 1.0) == ["small", "L2-S1"]
    assert _shipped(options, 5.0) == ["small", "L2-S1", "L1-S1"]  # even 4.6 points is within 5 s.e.


def test_thinning_keeps_the_more_accurate_of_two_close_variants() -> None:
    eps = PHONE.model_copy(update={"selection": PHONE.selection.model_copy(update={"min_latency_gain": 0.2})})
    slow_better, fast_worse = opt("slow", 1.00, 0.980), opt("fast", 0.95, 0.978)
    decisions = {d.variant_id: d for d in select([slow_better, fast_worse], eps, True, 1.0)}
    assert decisions["slow"].selected and not decisions["fast"].selected
    fast_better = opt("fast", 0.95, 0.982)  # within noise of each other, the faster is also measured better
    decisions = {d.variant_id: d for d in select([opt("slow", 1.0, 0.980), fast_better], eps, True, 1.0)}
    assert decisions["fast"].selected and not decisions["slow"].selected
    assert "within 5.0% of fast's latency" in decisions["slow"].reasons[0]


def test_rule_text_names_the_noise_margin() -> None:
    assert "standard error" in describe_rule(PHONE, "pareto", 1.0)
    assert "standard error" not in describe_rule(PHONE, "pareto", 0.0)
