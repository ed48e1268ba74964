"""A stitch whose suffix donor only ``torch.export`` can trace is costed before export like its exported file.

The default tier checks the same stitch's estimate byte for byte against its architecture
(``tests/unit/test_cost_export_split.py``); this exports it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restnet_compile.config.device import load_profile
from restnet_compile.models.registry import create_model
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from tests.slow.export_costs import check_costs
from tests.unit.fixture_models import FIXTURES, MNIST, SPECS

pytestmark = pytest.mark.slow

SHAPE_BRANCH = f"{FIXTURES}/traced_fallbacks.py:ShapeBranch"  # forward branches on the input size: fx cannot trace


def test_a_stitch_with_a_torch_export_suffix_is_costed_like_its_exported_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    front = create_model(SPECS["residual"], input_shape=MNIST, num_classes=10)
    back = create_model(SHAPE_BRANCH, input_shape=MNIST, num_classes=10)
    assert "torch.ops.aten." in back.head.graph_module.code  # the split came from torch.export
    src, dst = front.feature_specs()[0], back.feature_specs()[0]
    net = StitchedNet(front, back, StitchPoint(0, 0, "L", "S"), ADAPTERS.get("conv1x1")(src, dst)).eval()
    phone = load_profile("phone")
    check = check_costs("L0-S0", net, MNIST, phone, tmp_path)
    assert abs(check.size_error) <= 0.10, check.line()
    assert abs(check.ram_error) <= 0.10, check.line()
    suffix_weights = sum(p.numel() for p in back.parameters()) - sum(p.numel() for p in back.blocks[0].parameters())
    assert check.size_estimated > suffix_weights, check.line()  # the suffix's int8 weights are in the estimate
