"""The per-profile epsilon-Pareto rule (``selection.min_latency_gain``) and the occupancy term of the GPU roofline."""

from __future__ import annotations

import pytest

from restnet_compile._util.units import parse_percent
from restnet_compile.config.device import load_profile
from restnet_compile.cost.latency import fill_factors, roofline_ms
from restnet_compile.selection.rule import Option, describe_rule, select, thin_front

PHONE = load_profile("phone")
JETSON = load_profile("jetson")
MCU = load_profile("mcu")


def cand(vid: str, latency: float, acc: float) -> Option:
    return Option(vid, latency, 1000, 1000, acc, flops=1)


def with_gain(profile, gain: float):  # type: ignore[no-untyped-def]
    return profile.model_copy(update={"selection": profile.selection.model_copy(update={"min_latency_gain": gain})})


def _shipped(decisions) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.variant_id for d in decisions if d.selected]


# The demo pair's front on the jetson profile, in shape: the stitch saves less than 10 % of large's latency.
FRONT = [cand("large", 0.54, 0.994), cand("L4-S2", 0.50, 0.986), cand("small", 0.27, 0.976)]


def test_builtin_profiles_state_their_rule() -> None:
    assert JETSON.selection.min_latency_gain == pytest.approx(0.10)
    assert PHONE.selection.min_latency_gain == 0.0
    assert MCU.selection.min_latency_gain == 0.0


def test_zero_gain_ships_the_whole_front() -> None:
    assert _shipped(select(FRONT, PHONE)) == ["large", "L4-S2", "small"]


def test_gain_drops_a_step_too_small_with_its_reason() -> None:
    decisions = {d.variant_id: d for d in select(FRONT, JETSON)}
    assert _shipped(decisions.values()) == ["large", "small"]
    d = decisions["L4-S2"]
    assert d.feasible and not d.selected
    assert d.reasons == (
        "within 7.4% of large's latency (0.50 vs 0.54 ms) at lower accuracy (98.6% vs 99.4% val); "
        "this profile ships a step from 10%",
    )


def test_most_accurate_feasible_always_ships() -> None:
    assert _shipped(select(FRONT, with_gain(PHONE, 0.99))) == ["large"]


def test_steps_are_measured_from_the_last_shipped_variant() -> None:
    # each step is 6 % on its neighbour but 11.6 % on the last shipped one: a, (b dropped), c, (d dropped)
    chain = [cand("a", 1.0, 0.99), cand("b", 0.94, 0.98), cand("c", 0.8836, 0.97), cand("d", 0.8306, 0.96)]
    dropped = thin_front(chain, 0.10)
    assert sorted(dropped) == ["b", "d"]
    assert "of a's latency" in dropped["b"]
    assert "of c's latency" in dropped["d"]


def test_gain_applies_after_dominance_and_never_in_feasible_mode() -> None:
    cands = [*FRONT, cand("slow-worse", 0.6, 0.90)]
    decisions = {d.variant_id: d for d in select(cands, JETSON)}
    assert decisions["slow-worse"].reasons[0].startswith("dominated by")
    assert _shipped(select(cands, JETSON, pareto=False)) == ["large", "L4-S2", "small", "slow-worse"]


def test_gain_exactly_at_the_threshold_ships() -> None:
    assert _shipped(select([cand("a", 1.0, 0.99), cand("b", 0.9, 0.98)], with_gain(PHONE, 0.10))) == ["a", "b"]


def test_rule_text_names_epsilon_only_where_set() -> None:
    assert "epsilon-Pareto" in describe_rule(JETSON, "pareto") and "10%" in describe_rule(JETSON, "pareto")
    assert "epsilon" not in describe_rule(PHONE, "pareto")
    assert describe_rule(JETSON, "feasible").startswith("every variant")


@pytest.mark.parametrize(("text", "value"), [("0%", 0.0), ("10%", 0.1), ("2.5 %", 0.025), ("99.9%", 0.999)])
def test_parse_percent(text: str, value: float) -> None:
    assert parse_percent(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-5%", "100%", "150%", "10", "0.1", "10ms", "%", "ten%"])
def test_parse_percent_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="fraction"):
        parse_percent(text, "fraction")


def test_occupancy_slows_small_ops_on_the_gpu_only() -> None:
    lm = JETSON.latency_model
    assert lm.parallel_outputs is not None
    full, tenth = lm.parallel_outputs, lm.parallel_outputs // 10
    assert list(fill_factors([(1, 1, full), (1, 1, tenth), (1, 1, 0), (1, 1)], lm.parallel_outputs)) == [
        1.0,
        pytest.approx(0.1, rel=1e-4),
        1.0,  # unknown outputs (fused attention, old manifests): no penalty
        1.0,
    ]
    macs = 10**9
    big, small = roofline_ms([(macs, 0, full)], lm), roofline_ms([(macs, 0, tenth)], lm)
    overhead = lm.op_overhead + lm.invoke_overhead
    assert (small - overhead) == pytest.approx(10 * (big - overhead), rel=1e-3)
    # CPUs set no parallel_outputs: the output count changes nothing
    assert roofline_ms([(macs, 0, 10)], PHONE.latency_model) == roofline_ms([(macs, 0)], PHONE.latency_model)


@pytest.mark.parametrize("name", ["mcu", "phone", "jetson", "host"])
def test_peak_is_quoted_for_the_default_targets_dtype(name: str) -> None:
    """``peak_macs`` is the rate of the profile's first dtype, and that is the dtype its default target emits.

    jetson: fp16 tensor cores (onnx-fp16); mcu, phone, host: int8 dot products (tflm-int8, tflite-int8). A build
    for another dtype (phone tflite-fp32, jetson onnx-int8) is costed with the same peak: an estimate to calibrate.
    """
    from restnet_compile.config.device import load_target

    profile = load_profile(name)
    assert load_target(profile.target).dtype == profile.dtypes[0]
    assert ("parallel_outputs" in profile.latency_model.model_fields_set) == (profile.device_class == "jetson")


def test_calibration_recovers_a_gpu_model_with_occupancy() -> None:
    from restnet_compile.cost.latency import fit_latency_model

    lm = JETSON.latency_model
    true = lm.model_copy(update={"efficiency": 0.2, "op_overhead": 0.008, "invoke_overhead": 0.06})
    terms = {f"v{i}": [(10**6 * (i + 1) * k, 1000 * k, 5000 * k * (i + 1)) for k in range(1, 6 + i)] for i in range(6)}
    fit = fit_latency_model(terms, {k: roofline_ms(t, true) for k, t in terms.items()}, lm, None)
    assert fit.model.parallel_outputs == lm.parallel_outputs  # kept, like mem_bandwidth
    assert fit.model.efficiency == pytest.approx(0.2, rel=0.02)
    assert fit.mdape_after < 0.01
