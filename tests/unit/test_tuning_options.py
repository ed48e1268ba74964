"""Tuning options (feature augmentation, schedule, weight decay, label smoothing) and the tuning loop's shortcuts."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from restnet_compile.config.build import load_build_config
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching import ADAPTERS
from restnet_compile.stitching.tuning.loop import (
    AUGMENTS,
    SCHEDULES,
    CachedSplit,
    TuneConfig,
    fold_batchnorm,
    shift_maps,
    tune_adapter,
)

SRC, DST = FeatureSpec("map", (12, 8, 8)), FeatureSpec("map", (6, 4, 4))


def test_shift_keeps_shape_is_seeded_and_moves_content() -> None:
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    a = shift_maps(x, torch.Generator().manual_seed(3))
    b = shift_maps(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    outs = [shift_maps(x, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(not torch.equal(o, x) for o in outs)  # some seed shifts
    for o in outs:  # every map is x translated by at most one cell: its centre 3x3 comes from x's 5x5
        for k in range(2):
            inner = o[k, :, 1:4, 1:4]
            assert any(
                torch.equal(inner, x[k, :, 1 + dy : 4 + dy, 1 + dx : 4 + dx]) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
            )


def test_shift_replicates_the_border_and_passes_tokens() -> None:
    x = torch.ones(4, 2, 3, 3)
    assert torch.equal(shift_maps(x, torch.Generator().manual_seed(0)), x)  # constant map: replicate keeps it
    tokens = torch.randn(4, 5, 8)
    assert shift_maps(tokens, torch.Generator().manual_seed(0)) is tokens


@pytest.mark.parametrize(("field", "registry"), [("augment", AUGMENTS), ("schedule", SCHEDULES)])
def test_unknown_augment_or_schedule_lists_valid_names(field: str, registry) -> None:  # type: ignore[no-untyped-def]
    listed = ", ".join(registry.names())
    with pytest.raises(
        BadInputError, match=rf"tune.{field}.*unknown {field} 'bogus'; valid choices: {re.escape(listed)}"
    ):
        load_build_config(None, tune={field: "bogus"})
    assert load_build_config(None, tune={field: registry.names()[-1]}).tune.model_dump()[field] == registry.names()[-1]


@pytest.mark.parametrize(("field", "value"), [("weight_decay", -0.1), ("label_smoothing", 1.0), ("ema", 1.0)])
def test_out_of_range_regularisers_are_refused(field: str, value: float) -> None:
    with pytest.raises(BadInputError, match=f"tune.{field}"):
        load_build_config(None, tune={field: value})


def test_fold_batchnorm_keeps_the_function_and_freezes() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()), nn.Flatten())
    bn = net[0][1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(2, 3, 6, 6)
    folded = fold_batchnorm(copy.deepcopy(net))
    assert isinstance(folded[0][1], nn.Identity) and folded[0][0].bias is not None
    assert not any(p.requires_grad for p in folded.parameters())
    assert torch.allclose(folded(x), net(x), atol=1e-5)


class _Net(nn.Module):
    """Stand-in stitched net: adapter, frozen conv + BatchNorm suffix, linear head."""

    def __init__(self, adapter: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.suffix = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()).eval()
        self.suffix[1].running_mean.uniform_(-0.5, 0.5)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
        self.suffix.requires_grad_(False)
        self.head.requires_grad_(False)

    def from_prefix(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.suffix(self.adapter(feats)))


def _setup() -> tuple[_Net, CachedSplit]:
    torch.manual_seed(0)
    x = torch.randn(96, 12, 8, 8)
    adapter = ADAPTERS.get("conv-bn-relu")(SRC, DST).eval()
    adapter.least_squares_init(x, torch.relu(nn.functional.avg_pool2d(x[:, :6], 2)))
    net = _Net(adapter)
    with torch.no_grad():  # head: class k = mean of suffix channel k, so every class is reachable by the adapter
        net.head[2].weight.copy_(torch.eye(3, 6))
        net.head[2].bias.zero_()
        labels = (net.from_prefix(x).argmax(1) + 1) % 3  # never what the start predicts
    return net, CachedSplit(x, torch.randn(96, 3), labels)


@pytest.mark.parametrize(
    "options", [{"augment": "shift"}, {"schedule": "cosine"}, {"label_smoothing": 0.1}, {"ema": 0.9}]
)
def test_options_keep_the_suffix_and_never_lose_to_the_start(options: dict) -> None:
    net, split = _setup()
    suffix = [p.clone() for p in [*net.suffix.parameters(), *net.suffix.buffers()]]
    cfg = TuneConfig(epochs=3, patience=10, batch_size=32, lr=1e-2, **options)
    res = tune_adapter(net, split, split, cfg, 0)
    assert all(
        torch.equal(a, b) for a, b in zip(suffix, [*net.suffix.parameters(), *net.suffix.buffers()], strict=True)
    )
    assert res.val_accuracy >= res.val_accuracy_init
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("options", [{"augment": "shift"}, {"schedule": "cosine"}, {"weight_decay": 0.5}, {"ema": 0.9}])
def test_each_option_changes_the_training_trajectory(options: dict) -> None:
    """With validation = training data and no patience cut, the kept adapter is the best epoch's: options alter it."""
    states = []
    plain = {"augment": "none", "schedule": "constant", "weight_decay": 0.0, "ema": 0.0}
    for opts in (plain, {**plain, **options}):
        net, split = _setup()
        cfg = TuneConfig(epochs=4, patience=10, batch_size=32, lr=1e-2, distill_weight=0.0, **opts)
        res = tune_adapter(net, split, split, cfg, 0)
        assert res.best_epoch > 0  # the kept adapter is a tuned one, so the comparison below means something
        states.append(torch.cat([p.flatten() for p in net.adapter.parameters()]))
    assert not torch.allclose(states[0], states[1])


def test_adapter_fixed_then_trainable_is_forward() -> None:
    for name in ("conv1x1", "conv-bn-relu", "lowrank-dw", "residual"):
        adapter = ADAPTERS.get(name)(FeatureSpec("map", (4, 8, 8)), FeatureSpec("map", (6, 4, 4))).eval()
        x = torch.randn(2, 4, 8, 8)
        assert adapter.fixed(x).shape == (2, 4, 4, 4)
        assert torch.allclose(adapter.trainable(adapter.fixed(x)), adapter(x), atol=1e-6), name


def test_ema_keeps_the_averaged_weights() -> None:
    """A decay of almost 1 barely moves the average off the start, so what is evaluated and kept is the start."""
    net, split = _setup()
    start = torch.cat([p.detach().flatten() for p in net.adapter.parameters()])
    cfg = TuneConfig(epochs=3, patience=10, batch_size=32, lr=1e-2, distill_weight=0.0, ema=1 - 1e-9)
    tune_adapter(net, split, split, cfg, 0)
    kept = torch.cat([p.flatten() for p in net.adapter.parameters()])
    assert torch.allclose(kept, start, atol=1e-5)
