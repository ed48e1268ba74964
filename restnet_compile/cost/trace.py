"""Trace the leaf ops of one forward pass: execution order, tensor sizes and weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OpRecord:
    """One leaf module call.

    Attributes:
        name: Qualified module name.
        kind: Module class name (``Conv2d``, ``Linear``...).
        in_elems: Elements of the input tensor(s).
        out_elems: Elements of the output tensor.
        weight_elems: Elements of the module's weight tensor (biases are per-channel data, counted apart).
        out_channels: Output channels / features of a conv or linear layer, else 0.
    """

    name: str
    kind: str
    in_elems: int
    out_elems: int
    weight_elems: int
    out_channels: int = 0


# Element-wise modules that exporters fuse into the preceding op: no buffer, no dispatch of their own.
FUSED_KINDS = {"BatchNorm2d", "BatchNorm1d", "ReLU", "ReLU6", "Identity", "Dropout", "Flatten"}


def _elems(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(_elems(v) for v in value)
    return 0


def trace_ops(model: nn.Module, input_shape: tuple[int, ...]) -> list[OpRecord]:
    """Run ``model`` once on zeros and record every leaf module call in order."""
    records: list[OpRecord] = []
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue

        def hook(mod: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
            weight = getattr(mod, "weight", None)
            weights = weight.numel() if isinstance(weight, torch.Tensor) else 0
            channels = int(getattr(mod, "out_channels", 0) or getattr(mod, "out_features", 0))
            records.append(OpRecord(name, type(mod).__name__, _elems(inputs), _elems(output), weights, channels))

        handles.append(module.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return records
