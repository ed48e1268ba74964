"""A model split by ``torch.export`` (the fallback when ``torch.fx`` cannot trace) is costed like the same model
split by ``torch.fx``: same ops, weights, tensors, size, RAM and latency."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch import nn

from restnet_compile.config.device import load_profile
from restnet_compile.cost import cost_on, footprint
from restnet_compile.models import fx_split, fx_trace
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.registry import create_model
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from tests.unit.fixture_models import FIXTURES, MNIST, SPECS, raw_model


def _export_only(module: nn.Module, example: torch.Tensor) -> list:
    return [("torch.export", lambda: fx_trace.exported(module, example))]


def _both_splits(key: str) -> tuple[BlockSequence, BlockSequence]:
    torch.manual_seed(0)
    module = raw_model(key).eval()
    by_fx = fx_split.fx_split(module, key, MNIST, num_classes=10)
    with mock.patch.object(fx_split, "trace_attempts", _export_only):
        by_export = fx_split.fx_split(module, key, MNIST, num_classes=10)
    assert "torch.ops.aten." in by_export.blocks[0].graph_module.code
    assert "aten" not in by_fx.blocks[0].graph_module.code
    return by_fx, by_export


@pytest.mark.parametrize("key", ["residual", "dict_output"])
def test_a_torch_export_split_is_costed_like_the_fx_split(key: str) -> None:
    by_fx, by_export = _both_splits(key)
    fp_fx, fp_export = footprint(by_fx, MNIST), footprint(by_export, MNIST)
    assert [(o.name, o.kind, o.in_elems, o.out_elems, o.weight_elems, o.out_channels) for o in fp_export.ops] == [
        (o.name, o.kind, o.in_elems, o.out_elems, o.weight_elems, o.out_channels) for o in fp_fx.ops
    ]
    assert fp_export.flops.total == fp_fx.flops.total
    for name in ("phone", "mcu"):
        profile = load_profile(name)
        a, b = cost_on(fp_fx, profile, "int8"), cost_on(fp_export, profile, "int8")
        assert (b.model_bytes, b.ram_bytes, b.flash_bytes) == (a.model_bytes, a.ram_bytes, a.flash_bytes)
        assert b.latency_ms == pytest.approx(a.latency_ms, rel=1e-9)


def test_a_stitch_with_a_torch_export_suffix_counts_the_suffix() -> None:
    """``ShapeBranch`` branches on its input size, so only torch.export traces it; its suffix's weights and
    tensors are in the stitch's estimate (they were left out, costing the stitch as its prefix and adapter)."""
    torch.manual_seed(0)
    front = create_model(SPECS["residual"], input_shape=MNIST, num_classes=10)
    back = create_model(f"{FIXTURES}/traced_fallbacks.py:ShapeBranch", input_shape=MNIST, num_classes=10)
    assert "torch.ops.aten." in back.head.graph_module.code
    adapter = ADAPTERS.get("conv1x1")(front.feature_specs()[0], back.feature_specs()[0])
    net = StitchedNet(front, back, StitchPoint(0, 0, "L", "S"), adapter).eval()
    fp = footprint(net, MNIST)
    kinds = [(o.kind, o.weight_elems) for o in fp.ops if o.name.startswith(("suffix.", "head."))]
    assert kinds == [("Conv2d", 16 * 8 * 9), ("Linear", 16 * 14 * 14 * 10)]
    cost = cost_on(fp, load_profile("mcu"), "int8")
    suffix = 16 * 8 * 9 + 16 * 14 * 14 * 10 + (16 + 10) * 12  # int8 weights + per-channel bias, scale, zero point
    prefix = cost_on(footprint(nn.Sequential(front.blocks[0], adapter).eval(), MNIST), load_profile("mcu"), "int8")
    assert cost.model_bytes == prefix.model_bytes + suffix
