"""Feasibility against a device profile and the Pareto front of accuracy vs latency."""

from __future__ import annotations

import pytest

from restnet_compile.config.device import load_profile
from restnet_compile.errors import EXIT_INFEASIBLE, InfeasibleError
from restnet_compile.selection.rule import Option, limit_violations, select

MCU = load_profile("mcu")  # p90 budget 90 ms, RAM 512 KiB, flash 2 MiB
KB = 1000


def cand(vid: str, latency: float = 10.0, ram: int = 100 * KB, flash: int = 500 * KB, acc: float = 0.9) -> Option:
    return Option(vid, latency, ram, flash, acc, flops=1_000_000)


def _by_id(decisions):  # type: ignore[no-untyped-def]
    return {d.variant_id: d for d in decisions}


def test_everything_within_limits_and_on_the_front_ships() -> None:
    cands = [cand("fast", 5.0, acc=0.90), cand("accurate", 50.0, acc=0.97)]
    decisions = select(cands, MCU)
    assert [d.variant_id for d in decisions] == ["fast", "accurate"]  # same order as the input
    assert all(d.feasible and d.selected and d.reasons == () for d in decisions)


def test_over_latency_budget_is_infeasible_with_reason() -> None:
    d = _by_id(select([cand("ok", 10.0), cand("slow", 103.47, acc=0.99)], MCU))["slow"]
    assert not d.feasible
    assert not d.selected
    assert len(d.reasons) == 1
    reason = d.reasons[0]
    assert "latency" in reason
    assert "p90" in reason
    assert "103.47 ms > 90 ms" in reason


def test_over_ram_is_infeasible_with_reason() -> None:
    d = _by_id(select([cand("ok"), cand("fat", ram=600 * KB, acc=0.99)], MCU))["fat"]
    assert not d.feasible and not d.selected
    assert d.reasons == ("RAM 600.0 KB > 512.0 KiB",)


def test_over_flash_is_infeasible_with_reason() -> None:
    d = _by_id(select([cand("ok"), cand("big", flash=3 * 1024**2, acc=0.99)], MCU))["big"]
    assert not d.feasible
    assert d.reasons == ("flash 3.0 MiB > 2.0 MiB",)


def test_limits_are_inclusive() -> None:
    exact = cand("exact", latency=MCU.latency.budget, ram=MCU.ram, flash=MCU.flash)
    assert limit_violations(exact, MCU) == []
    assert select([exact], MCU)[0].selected


def test_every_violated_limit_is_listed_in_order() -> None:
    bad = cand("bad", latency=200.0, ram=MCU.ram + 1, flash=MCU.flash + 1)
    reasons = limit_violations(bad, MCU)
    assert [r.split()[0] for r in reasons] == ["latency", "RAM", "flash"]


def test_dominated_variant_is_not_selected() -> None:
    cands = [cand("good", 10.0, acc=0.95), cand("worse", 20.0, acc=0.93), cand("other", 5.0, acc=0.90)]
    decisions = _by_id(select(cands, MCU))
    worse = decisions["worse"]
    assert worse.feasible
    assert not worse.selected
    assert len(worse.reasons) == 1
    assert worse.reasons[0].startswith("dominated by good")
    assert "10.00 ms, 1.00 MFLOPs at 95.0% val vs 20.00 ms, 1.00 MFLOPs at 93.0% val" in worse.reasons[0]
    assert decisions["good"].selected and decisions["other"].selected


def test_equal_latency_lower_accuracy_is_dominated() -> None:
    decisions = _by_id(select([cand("a", 10.0, acc=0.95), cand("b", 10.0, acc=0.94)], MCU))
    assert decisions["a"].selected
    assert not decisions["b"].selected
    assert decisions["b"].reasons[0].startswith("dominated by a")


def test_identical_variants_do_not_dominate_each_other() -> None:
    decisions = select([cand("a", 10.0, acc=0.95), cand("b", 10.0, acc=0.95)], MCU)
    assert all(d.selected for d in decisions)


def test_infeasible_variant_does_not_dominate() -> None:
    # "over" is faster and more accurate than "fits" but does not fit in RAM: it must not knock "fits" out
    cands = [cand("over", 50.0, ram=600 * KB, acc=0.99), cand("fits", 80.0, acc=0.90)]
    decisions = _by_id(select(cands, MCU))
    assert decisions["fits"].selected
    assert decisions["fits"].reasons == ()
    assert not decisions["over"].feasible


def test_pareto_off_ships_every_feasible_variant() -> None:
    cands = [cand("good", 10.0, acc=0.95), cand("worse", 20.0, acc=0.93), cand("slow", 120.0)]
    decisions = _by_id(select(cands, MCU, pareto=False))
    assert decisions["good"].selected and decisions["worse"].selected
    assert decisions["worse"].reasons == ()
    assert not decisions["slow"].selected


def test_nothing_feasible_names_the_closest_variant() -> None:
    cands = [
        cand("way-off", latency=900.0, ram=2000 * KB),
        cand("near", latency=103.47),  # misses the budget by 15 %
        cand("fat", ram=1000 * KB),  # misses RAM by ~2x
    ]
    with pytest.raises(InfeasibleError) as info:
        select(cands, MCU)
    msg = str(info.value)
    assert "profile mcu" in msg
    assert "closest is near" in msg
    assert "latency p90 103.47 ms > 90 ms" in msg
    assert info.value.exit_code == EXIT_INFEASIBLE
