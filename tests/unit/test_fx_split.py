"""The generic split on models written the way real repositories write them: exact, listed, overridable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from restnet_compile.models import create_model
from restnet_compile.models.block_table import block_table, format_block_table
from restnet_compile.models.checkpoints import load_checkpoint
from restnet_compile.models.fx_graph import logits_key, pick
from restnet_compile.models.fx_split import GraphBlock, cut_points
from restnet_compile.models.sources import ModelOptions, user_model
from restnet_compile.models.splitters import split_model
from tests.unit.fixture_models import FIXTURES, MNIST, SPECS, raw_model

FALLBACKS = f"{FIXTURES}/traced_fallbacks.py"


def _original(key: str, weights: Path) -> torch.nn.Module:
    module = raw_model(key)
    load_checkpoint(module, weights, key)
    return module.eval()


@pytest.mark.parametrize("key", list(SPECS))
def test_fixture_model_splits_exactly_and_lists_its_blocks(
    key: str, checkpoints: dict[str, Path], digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = create_model(SPECS[key], weights=checkpoints[key], input_shape=MNIST, num_classes=10)
    assert len(model.blocks) >= 2
    assert all(isinstance(b, GraphBlock) for b in model.blocks) and isinstance(model.head, GraphBlock)
    original = _original(key, checkpoints[key])
    x = digits[0][:64]
    with torch.no_grad():
        out = original(x)
        want = pick(out, logits_key(out, 64, 10))
        got = model(x)
    assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(want.abs().max()))
    rows = block_table(model)
    assert [r.name for r in rows] == [*model.block_names, "head"]
    assert all(r.output.startswith("map ") for r in rows[:-1]) and rows[-1].output == "logits 10"
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        original(x[:1])
    dropped = original.aux[2].in_features * original.aux[2].out_features if key == "tuple_output" else 0
    assert sum(r.macs for r in rows) == counter.get_total_flops() // 2 - dropped  # each in one block; no aux head
    assert all(r.macs > 0 for r in rows[:-1])
    assert format_block_table(rows).count("\n") == len(rows)


def test_default_rule_cuts_between_stages_never_inside_a_residual(checkpoints: dict[str, Path]) -> None:
    digit = create_model(SPECS["digit_cnn"], weights=checkpoints["digit_cnn"], input_shape=MNIST)
    assert digit.block_names == ["conv_layers.2", "conv_layers"]  # after each pooling, the head is the fc_layers
    residual = create_model(SPECS["residual"], weights=checkpoints["residual"], input_shape=MNIST)
    assert residual.block_names == ["relu", "layer1", "layer2", "layer3"]
    assert [s.describe() for s in residual.feature_specs()] == [
        "map 16x28x28",
        "map 16x28x28",
        "map 32x14x14",
        "map 64x7x7",
    ]
    two = create_model(SPECS["residual"], weights=checkpoints["residual"], input_shape=MNIST, max_blocks=2)
    assert len(two.blocks) == 2 and two.block_names[-1] == "layer3"


def test_split_names_the_cut_points(checkpoints: dict[str, Path]) -> None:
    points = cut_points(raw_model("residual"), "residual", MNIST)
    names = [p.name for p in points]
    assert {"conv1", "layer1", "layer2", "layer3"} <= set(names) and names[-1] == "layer3"
    assert "layer1.0.conv1" not in names  # inside a residual block
    assert [p.macs_before for p in points] == sorted(p.macs_before for p in points)
    model = create_model(
        SPECS["residual"], weights=checkpoints["residual"], input_shape=MNIST, split=["layer2", "conv1"]
    )
    assert model.block_names == ["conv1", "layer2", "layer3"]  # sorted, and the head start closes the last block
    with torch.no_grad():
        x = torch.rand(3, *MNIST)
        assert torch.allclose(model(x), _original("residual", checkpoints["residual"])(x), atol=1e-6)


def test_batch_size_read_once_at_the_top_follows_each_block(checkpoints: dict[str, Path]) -> None:
    """ResNetMini reads ``batch_size = x.shape[0]`` first and uses it last; the blocks still take any batch."""
    model = create_model(SPECS["residual"], weights=checkpoints["residual"], input_shape=MNIST)
    original = _original("residual", checkpoints["residual"])
    for batch in (1, 5):
        x = torch.rand(batch, *MNIST)
        with torch.no_grad():
            assert torch.allclose(model(x), original(x), atol=1e-6)


def test_a_block_never_writes_into_its_input(checkpoints: dict[str, Path]) -> None:
    model = create_model(SPECS["sequential"], weights=checkpoints["sequential"], input_shape=MNIST, split=["1"])
    x = torch.rand(2, *MNIST)
    with torch.no_grad():
        feats = model.blocks[0](x)  # conv + BatchNorm; the next block starts with ReLU(inplace=True)
        kept = feats.clone()
        model.blocks[1](feats)
    assert torch.equal(feats, kept)


@pytest.mark.parametrize(
    ("cls", "names", "sign"),
    [
        ("GatedNet", ["relu", "gate", "down"], "self.gate("),  # branches on values: one opaque call, never cut inside
        ("ShapeBranch", ["relu", "b"], "torch.ops.aten."),  # branches on the input size: traced by torch.export
    ],
)
def test_models_fx_cannot_trace_whole_still_split(cls: str, names: list[str], sign: str) -> None:
    torch.manual_seed(0)
    module = user_model(f"{FALLBACKS}:{cls}", ModelOptions()).eval()
    model = split_model(module, cls, MNIST, num_classes=10)
    assert model.block_names == names
    assert any(sign in b.graph_module.code for b in model.blocks)
    x = torch.rand(3, *MNIST)
    with torch.no_grad():
        assert torch.allclose(model(x), module(x), atol=1e-6)


def test_channels_last_stages_cross_blocks_channels_first() -> None:
    torch.manual_seed(0)
    module = user_model(f"{FALLBACKS}:ChannelsLastNet", ModelOptions()).eval()
    model = split_model(module, "ChannelsLastNet", MNIST, num_classes=10)
    specs = model.feature_specs()
    assert len(specs) >= 3
    assert all(s.kind == "map" and s.resolution in ((14, 14), (7, 7)) for s in specs)  # (B, C, H, W), not (B, H, W, C)
    assert {s.channels for s in specs} <= {16, 32, 64}
    x = torch.rand(2, *MNIST)
    with torch.no_grad():
        assert torch.allclose(model(x), module(x), atol=1e-6)
