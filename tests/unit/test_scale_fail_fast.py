"""Fail fast: costs of both anchors and every possible stitch are screened before CKA and tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import builtin_text, load_profile, load_target
from restnet_compile.cost import estimate_cost
from restnet_compile.data import Dataset, make_splits
from restnet_compile.errors import InfeasibleError
from restnet_compile.pipeline import driver
from restnet_compile.pipeline.family import load_family
from restnet_compile.pipeline.load import load_models
from restnet_compile.pipeline.screen import screen
from restnet_compile.stitching import build_stitched, plan_candidates
from restnet_compile.stitching.plan import stitch_pairs
from tests.unit.conftest import CliCall


def _profile(tmp_path: Path, name: str, budget: str) -> Path:
    """The built-in phone profile renamed and with another latency budget."""
    data = yaml.safe_load(builtin_text("profiles", "phone"))
    data["name"] = name
    data["latency"]["budget"] = budget
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _forbid(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the build went past the screen")

    for name in names:
        monkeypatch.setattr(driver, name, refuse)


def test_a_profile_nothing_fits_exits_3_before_the_data_cka_or_tuning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_in_process: CliCall
) -> None:
    _forbid(monkeypatch, "load_splits", "family_cka", "tune_stage")
    watch = str(_profile(tmp_path, "watch", "0.01ms"))
    # the stages that take time are forbidden above; how fast the exit is, is bench/bench_fail_fast.py's to measure
    proc = cli_in_process("build", "--profile", watch, "--out", "dist", "--quiet", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip() == (
        "error: no variant fits profile watch; closest is small: latency p90 0.16 ms > 0.01 ms (+1458%)"
    )
    assert not (tmp_path / "dist").exists()


def test_the_api_raises_selections_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid(monkeypatch, "load_splits", "family_cka", "tune_stage")
    config = BuildConfig(profile=str(_profile(tmp_path, "watch", "0.01ms")))
    with pytest.raises(InfeasibleError, match=r"^no variant fits profile watch; closest is small: latency p90"):
        api.build(config, tmp_path / "dist", cache=False)


def test_screened_pairs_are_the_ones_whose_costs_fit(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, "tight", "1.5ms"))
    config = BuildConfig()
    family = load_family(config)
    large, small = family.models
    found = screen(config, [(profile, load_target(profile.target))], family)
    costs = found.costs["tight"]
    pairs = {(i, j) for i, j, _a in stitch_pairs(large.feature_specs(), small.feature_specs(), config.plan)}
    fits = {(int(v[1]), int(v[4])) for v, c in costs.items() if "-" in v and c.latency_ms <= 1.5}
    assert found.runnable["tight"] == {"L-S": fits}
    assert fits and fits < pairs  # some stitches fit, some do not
    assert costs["large"].latency_ms > 1.5 >= costs["small"].latency_ms
    assert "tight" not in found.failures


def test_an_untuned_stitch_costs_what_the_tuned_one_does() -> None:
    config = BuildConfig(tune={"recipe": "ls-only"})
    profile = load_profile("phone")
    family = load_family(config)
    large, small = family.models
    found = screen(config, [(profile, load_target("tflite-int8"))], family)
    rng = np.random.default_rng(0)
    few = Dataset("noise", rng.uniform(size=(250, 1, 28, 28)).astype(np.float32), np.arange(250) % 10, 10)
    splits = make_splits(few, seed=0, calib=60, val=60, test=60)  # shapes are what costs depend on
    plan = plan_candidates(np.ones((6, 4)), large.feature_specs(), small.feature_specs(), config.plan)
    sv = build_stitched(large, small, plan[1], splits, config.tune, config.seed)
    tuned = estimate_cost(sv.net, large.input_shape, profile, "int8")
    assert found.costs["phone"][plan[1].point.variant_id] == tuned


def test_the_plan_picks_among_runnable_pairs_only() -> None:
    config = BuildConfig()
    large, small = load_models(config)
    f, b = large.feature_specs(), small.feature_specs()
    cka = np.random.default_rng(0).uniform(size=(6, 4))
    everything = plan_candidates(cka, f, b, config.plan)
    assert plan_candidates(cka, f, b, config.plan, {(i, j) for i, j, _a in stitch_pairs(f, b, config.plan)}) == (
        everything
    )
    best = everything[0].point
    allowed = {(i, j) for i, j, _a in stitch_pairs(f, b, config.plan)} - {(best.front_block, best.back_block)}
    picked = plan_candidates(cka, f, b, config.plan, allowed)
    assert all((c.point.front_block, c.point.back_block) in allowed for c in picked)
    same_cut = [c for c in picked if c.point.front_block == best.front_block]
    assert same_cut and same_cut[0].point.back_block != best.back_block  # the cut's best runnable pair instead
    assert plan_candidates(cka, f, b, config.plan, set()) == []
