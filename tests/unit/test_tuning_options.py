"""The tuning loop's shortcuts (BatchNorm folding, the adapter's fixed stage) and what tuning leaves untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from restnet_compile.config.build import TuneSettings, load_build_config
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching import ADAPTERS
from restnet_compile.stitching.tuning.loop import CachedSplit, fold_batchnorm, tune_adapter

SRC, DST = FeatureSpec("map", (12, 8, 8)), FeatureSpec("map", (6, 4, 4))


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


def test_tuning_keeps_the_suffix_and_never_loses_to_the_start() -> None:
    net, split = _setup()
    suffix = [p.clone() for p in [*net.suffix.parameters(), *net.suffix.buffers()]]
    cfg = TuneSettings(epochs=3, patience=10, batch_size=32, lr=1e-2)
    res = tune_adapter(net, split, split, cfg, 0)
    assert all(
        torch.equal(a, b) for a, b in zip(suffix, [*net.suffix.parameters(), *net.suffix.buffers()], strict=True)
    )
    assert res.val_accuracy >= res.val_accuracy_init
    assert not any(p.requires_grad for p in net.parameters())


def test_adapter_fixed_then_trainable_is_forward() -> None:
    for name in ("conv1x1", "conv-bn-relu"):
        adapter = ADAPTERS.get(name)(FeatureSpec("map", (4, 8, 8)), FeatureSpec("map", (6, 4, 4))).eval()
        x = torch.randn(2, 4, 8, 8)
        assert adapter.fixed(x).shape == (2, 4, 4, 4)
        assert torch.allclose(adapter.trainable(adapter.fixed(x)), adapter(x), atol=1e-6), name


def test_options_that_left_the_package_are_unknown_fields() -> None:
    for field, value in (("augment", "shift"), ("schedule", "constant"), ("ema", 0.9), ("weight_decay", 0.1)):
        with pytest.raises(BadInputError, match=f"tune.{field}"):
            load_build_config(None, tune={field: value})


def test_fake_quantization_rounds_to_int8_steps() -> None:
    from restnet_compile.stitching.tuning.qat import fake_quant_activation, fake_quant_weight

    x = torch.linspace(-1.0, 3.0, 1000)
    q = fake_quant_activation(x)
    step = 4.0 / 255
    assert len(torch.unique(q)) <= 256 and (q - x).abs().max() <= step / 2 + 1e-6
    w = torch.randn(4, 3, 3, 3)
    qw = fake_quant_weight(w)
    for k in range(4):  # per output channel, symmetric: 255 levels at most, max |w| kept
        assert len(torch.unique(qw[k])) <= 255
        assert torch.isclose(qw[k].abs().max(), w[k].abs().max(), rtol=1e-5)


def test_qat_passes_keep_the_suffix_and_never_lose_under_fake_quantization() -> None:
    from restnet_compile.stitching.tuning.qat import qat_adapter, quantized_tail

    net, split = _setup()
    suffix = [p.clone() for p in net.suffix.parameters()]
    weights = copy.deepcopy(net.adapter.state_dict())
    run = quantized_tail(net)  # type: ignore[arg-type]
    start = (run(split.feats[:]).argmax(1) == split.labels).float().mean().item()
    cfg = TuneSettings(epochs=1, batch_size=32, lr=1e-1, qat=3)
    best = qat_adapter(net, split, split, cfg, 0)  # type: ignore[arg-type]
    assert best >= round(start, 4)
    assert all(torch.equal(a, b) for a, b in zip(suffix, net.suffix.parameters(), strict=True))
    assert any(not torch.equal(weights[k], v) for k, v in net.adapter.state_dict().items()) or best == round(start, 4)
    assert not any(p.requires_grad for p in net.parameters())
