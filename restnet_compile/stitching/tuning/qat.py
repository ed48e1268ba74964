"""Quantization-aware adapter tuning: a few passes in which the int8 rounding the exported model will see is
simulated, so that the adapter learns an output the quantized suffix reads as the float one does.

Fake quantization (round to int8 and back, with a straight-through gradient) is applied where a full-integer
TFLite model rounds and the adapter can act: its conv weights (per output channel, symmetric, as the converter
quantizes weights) and the activations after the adapter and after every block of the suffix (per tensor, on the
batch's min / max range, as the converter calibrates activations). The loss is tuning's own (cross-entropy and
distillation from the large model), at a tenth of tuning's learning rate; the adapter with the best validation
accuracy *under fake quantization* is kept, the start included, so the passes never leave a worse int8 adapter
than they began with. Donors stay frozen.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from restnet_compile.config.build import TuneSettings
from restnet_compile.stitching.net import StitchedNet
from restnet_compile.stitching.tuning.loop import (
    CachedSplit,
    _run_epoch,
    feature_rows,
    fixed_split,
    fold_batchnorm,
    split_accuracy,
)


def fake_quant_activation(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to int8 on its own min / max range (zero included), straight-through gradient."""
    lo = torch.clamp(x.detach().min(), max=0.0)
    hi = torch.clamp(x.detach().max(), min=0.0)
    scale = float(torch.clamp((hi - lo) / 255.0, min=1e-8))
    zero = int(torch.clamp(torch.round(-128 - lo / scale), -128, 127))
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, -128, 127)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Conv / linear weight rounded to int8 per output channel, symmetric, straight-through gradient."""
    flat = w.detach().reshape(len(w), -1).abs().amax(1)
    scale = torch.clamp(flat / 127.0, min=1e-8).float()
    zero = torch.zeros(len(w), dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


class _QuantizedWeights:
    """While active, every Conv2d / Linear of ``module`` runs with fake-quantized weights."""

    def __init__(self, module: nn.Module) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> None:
        for layer in self.layers:
            self.handles.append(layer.register_forward_pre_hook(_swap_weight))
            self.handles.append(layer.register_forward_hook(_restore_weight))

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def _swap_weight(layer: nn.Module, _inputs: tuple) -> None:
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    layer._qat_weight = weight
    del layer.weight
    layer.weight = fake_quant_weight(weight)


def _restore_weight(layer: nn.Module, _inputs: tuple, _output: torch.Tensor) -> None:
    del layer.weight
    layer.weight = layer._qat_weight
    del layer._qat_weight


def quantized_tail(net: StitchedNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """Adapter (trainable stage), suffix and head on fixed features, with int8 rounding simulated after the adapter
    and after every suffix block; the suffix a BatchNorm-folded frozen copy (``net`` itself unchanged)."""
    blocks = [fold_batchnorm(copy.deepcopy(b)).eval() for b in net.suffix]
    head = fold_batchnorm(copy.deepcopy(net.head)).eval()

    def run(feats: torch.Tensor) -> torch.Tensor:
        x = fake_quant_activation(net.adapter.trainable(feats))
        for block in blocks:
            x = fake_quant_activation(block(x))
        return head(x)

    return run


def qat_adapter(net: StitchedNet, train: CachedSplit, val: CachedSplit, cfg: TuneSettings, seed: int) -> float:
    """``cfg.qat`` passes of quantization-aware tuning of ``net.adapter``; leaves ``net`` holding the adapter of best
    validation accuracy under fake quantization (the start included) and returns that accuracy."""
    for p in net.adapter.parameters():
        p.requires_grad_(True)
    net.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    rows = feature_rows(net)
    train, val = fixed_split(net, train, rows), fixed_split(net, val, rows)
    run = quantized_tail(net)
    weights = _QuantizedWeights(net.adapter)
    opt = torch.optim.Adam(net.adapter.parameters(), lr=cfg.lr / 10, foreach=True)
    steps = cfg.qat * -(-len(train.labels) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    with weights:
        best = split_accuracy(run, val, rows)
    best_state = copy.deepcopy(net.adapter.state_dict())
    for _ in range(cfg.qat):
        with weights:
            _run_epoch(run, train, opt, sched, cfg, gen)
            acc = split_accuracy(run, val, rows)
        if acc > best:
            best, best_state = acc, copy.deepcopy(net.adapter.state_dict())
    net.adapter.load_state_dict(best_state)
    for p in net.adapter.parameters():
        p.requires_grad_(False)
    return round(best, 4)
