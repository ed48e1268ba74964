"""FLOPs, memory and roofline latency of the demo models against device profiles."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restnet_compile.config.device import load_profile
from restnet_compile.cost import count_flops, estimate_cost
from restnet_compile.cost.estimate import traced_peak_bytes
from restnet_compile.cost.trace import trace_ops
from restnet_compile.models import create_model

SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def large() -> nn.Module:
    return create_model("demo-large-cnn")


@pytest.fixture(scope="module")
def small() -> nn.Module:
    return create_model("demo-small-cnn")


@pytest.fixture(scope="module")
def costs(large: nn.Module, small: nn.Module) -> dict:
    out = {}
    for model_name, model in (("large", large), ("small", small)):
        for profile in ("mcu", "phone"):
            out[model_name, profile] = estimate_cost(model, SHAPE, load_profile(profile), "int8")
    return out


def _conv_macs(cin: int, cout: int, hw: int) -> int:
    return cin * cout * 9 * hw * hw


def test_count_flops_large(large: nn.Module) -> None:
    report = count_flops(large, SHAPE)
    assert 29e6 <= report.total <= 30e6
    convs = (
        _conv_macs(1, 32, 28)
        + _conv_macs(32, 32, 28)
        + _conv_macs(32, 64, 14)
        + _conv_macs(64, 64, 14)
        + _conv_macs(64, 128, 7)
        + _conv_macs(128, 128, 7)
    )
    assert convs < report.total < convs * 1.01  # convolutions dominate; BN, pooling and the head are small
    assert report.by_module[""] == report.total
    assert report.by_module["blocks.0.0"] == _conv_macs(1, 32, 28)


def test_count_flops_small(small: nn.Module) -> None:
    report = count_flops(small, SHAPE)
    # stride-2 first conv (28 -> 14), then 8-16-32-32 channels, then a 32 -> 10 linear head: matrix MACs only
    convs = _conv_macs(1, 8, 14) + _conv_macs(8, 16, 14) + _conv_macs(16, 32, 7) + _conv_macs(32, 32, 7)
    assert report.total == convs + 32 * 10
    assert report.uncounted == {}
    assert report.elementwise > 0  # BN, ReLU and pooling are counted apart, not dropped


def test_pooling_and_elementwise_are_counted_apart(large: nn.Module) -> None:
    report = count_flops(large, SHAPE)
    assert report.uncounted == {}  # max_pool2d has a handle now
    pools = report.elementwise_by_module["blocks.1.3"] if "blocks.1.3" in report.elementwise_by_module else None
    assert report.elementwise >= 32 * 14 * 14 * 4  # at least the first 2x2 max pool's window reads
    assert pools is None or pools > 0


def test_uncounted_ops_are_listed() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x.flatten(1), 1).view(1, 1, 28, 28)

    report = count_flops(Odd(), SHAPE)
    assert report.uncounted == {"aten::cumsum": 1}  # no handle: listed, never a silent zero
    assert not any(op in report.uncounted for op in ("aten::view", "aten::flatten", "aten::reshape"))


def test_trace_ops_records_leaf_calls_in_order(small: nn.Module) -> None:
    ops = trace_ops(small, SHAPE)
    assert [o.kind for o in ops[:3]] == ["Conv2d", "BatchNorm2d", "ReLU"]
    first = ops[0]
    assert first.in_elems == 28 * 28
    assert first.out_elems == 8 * 14 * 14
    assert first.weight_elems == 8 * 9
    assert first.out_channels == 8
    assert ops[-1].kind == "Linear" and ops[-1].out_channels == 10


def test_mcu_is_slower_than_phone(costs: dict) -> None:
    for model in ("large", "small"):
        assert costs[model, "mcu"].latency_ms > 5 * costs[model, "phone"].latency_ms


def test_demo_pair_straddles_the_mcu_budget(costs: dict) -> None:
    budget = load_profile("mcu").latency.budget
    assert costs["large", "mcu"].latency_ms > budget
    assert costs["small", "mcu"].latency_ms < budget


def test_larger_model_costs_more(costs: dict) -> None:
    for profile in ("mcu", "phone"):
        big, little = costs["large", profile], costs["small", profile]
        assert big.flops > 20 * little.flops
        assert big.params > little.params
        assert big.model_bytes > little.model_bytes
        assert big.latency_ms > little.latency_ms


def test_mcu_ram_excludes_weights(small: nn.Module, costs: dict) -> None:
    mcu = load_profile("mcu")
    assert mcu.weights_in_ram is False
    c = costs["small", "mcu"]
    assert c.ram_bytes < 200_000
    assert c.ram_bytes == traced_peak_bytes(trace_ops(small, SHAPE), "int8") + mcu.runtime_ram


def test_phone_ram_includes_weights(costs: dict) -> None:
    mcu, phone = load_profile("mcu"), load_profile("phone")
    assert phone.weights_in_ram is True
    for model in ("large", "small"):
        on_mcu, on_phone = costs[model, "mcu"], costs[model, "phone"]
        activations = on_mcu.ram_bytes - mcu.runtime_ram
        assert on_phone.ram_bytes == activations + phone.runtime_ram + on_phone.model_bytes


def test_flash_is_model_plus_runtime(costs: dict) -> None:
    for (_, profile), c in costs.items():
        assert c.flash_bytes == c.model_bytes + load_profile(profile).runtime_flash


def test_model_bytes_scale_with_dtype(small: nn.Module) -> None:
    phone = load_profile("phone")
    int8 = estimate_cost(small, SHAPE, phone, "int8").model_bytes
    fp32 = estimate_cost(small, SHAPE, phone, "fp32").model_bytes
    params = sum(p.numel() for p in small.parameters())
    assert params < int8 < 2 * params  # about one byte per weight plus per-channel data and framing
    assert 3 * int8 < fp32


def test_latency_percentile_factor_applies(small: nn.Module) -> None:
    phone = load_profile("phone")
    no_jitter = phone.model_copy(
        update={"latency_model": phone.latency_model.model_copy(update={"percentile_factor": 1.0})}
    )
    with_jitter = estimate_cost(small, SHAPE, phone, "int8").latency_ms
    base = estimate_cost(small, SHAPE, no_jitter, "int8").latency_ms
    assert with_jitter == pytest.approx(base * 1.3, rel=1e-3)


def test_estimate_does_not_change_the_model(small: nn.Module) -> None:
    before = {k: v.clone() for k, v in small.state_dict().items()}
    estimate_cost(small, SHAPE, load_profile("mcu"), "int8")
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())
    assert not small.training
