"""Foreign architectures, split by torch.fx or by torch.export, are costed before export within 10 % of their
exported files (phone, tflite-int8, 32 px): each anchor's size and RAM, and a stitch's whose suffix torch.export split.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn

from restnet_compile.config.build import PlanSettings
from restnet_compile.config.device import load_profile
from restnet_compile.models import fx_split, fx_trace
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.sources import ModelOptions, torchvision_factory
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from restnet_compile.stitching.plan import stitch_pairs
from tests.slow.export_costs import check_costs

pytestmark = pytest.mark.extended  # many architectures: `make test-extended`, outside CI

SHAPE = (3, 32, 32)
EXPORT = "@export"  # the model is split from its torch.export graph, as when torch.fx cannot trace it


def _export_only(module: nn.Module, example: torch.Tensor) -> list:
    return [("torch.export", lambda: fx_trace.exported(module, example))]


def split(spec: str) -> BlockSequence:
    arch = spec.removesuffix(EXPORT)
    torch.manual_seed(0)
    module = torchvision_factory(arch)(arch, ModelOptions(input_shape=SHAPE, num_classes=10)).eval()
    if not spec.endswith(EXPORT):
        return fx_split.fx_split(module, arch, SHAPE, num_classes=10)
    with mock.patch.object(fx_split, "trace_attempts", _export_only):
        seq = fx_split.fx_split(module, arch, SHAPE, num_classes=10)
    assert "torch.ops.aten." in seq.head.graph_module.code
    return seq


def stitch(front_spec: str, back_spec: str) -> nn.Module:
    """The middle pair the plan allows, with its planned adapter."""
    front, back = split(front_spec), split(back_spec)
    f, b = front.feature_specs(), back.feature_specs()
    pairs = stitch_pairs(f, b, PlanSettings())
    i, j, adapter = pairs[len(pairs) // 2]
    return StitchedNet(front, back, StitchPoint(i, j, "L", "S"), ADAPTERS.get(adapter)(f[i], b[j])).eval()


CASES = {
    "shufflenet_v2_x0_5@export": lambda: split("shufflenet_v2_x0_5@export"),
    "mnasnet0_5": lambda: split("mnasnet0_5"),
    "efficientnet_b0": lambda: split("efficientnet_b0"),
    "mnasnet0_5 -> shufflenet_v2_x0_5@export": lambda: stitch("mnasnet0_5", "shufflenet_v2_x0_5@export"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_estimated_size_and_ram_are_within_ten_percent_of_the_exported_file(case: str, tmp_path: Path) -> None:
    check = check_costs(case, CASES[case](), SHAPE, load_profile("phone"), tmp_path)
    print(check.line())
    assert abs(check.size_error) <= 0.10, check.line()
    assert abs(check.ram_error) <= 0.10, check.line()
