"""FLOPs with fvcore, with no silent zeros: every op fvcore could not count is listed.

Counts follow fvcore's convention: one fused multiply-add is one FLOP (ResNet-18 = 1.82 G).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn


@dataclass(frozen=True)
class FlopReport:
    """FLOPs of one forward pass of a single image.

    Attributes:
        total: Multiply-adds of the whole model.
        by_module: Multiply-adds per module name (leaves and parents).
        uncounted: Ops fvcore saw but did not count, with how often they ran.
    """

    total: int
    by_module: dict[str, int]
    uncounted: dict[str, int]


# Ops that cost no arithmetic (views, shape bookkeeping) are not worth listing as uncounted.
_FREE_OPS = {
    "aten::view",
    "aten::reshape",
    "aten::flatten",
    "aten::permute",
    "aten::transpose",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::expand",
    "aten::select",
    "aten::slice",
    "aten::contiguous",
    "aten::size",
    "aten::t",
    "aten::unbind",
    "aten::numel",
    "aten::detach",
    "aten::clone",
    "prim::TupleConstruct",
}


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> FlopReport:
    """Count multiply-adds of ``model`` on one input of ``input_shape`` (without batch dimension)."""
    model.eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.zeros(1, *input_shape))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = int(analysis.total())
        by_module = {k: int(v) for k, v in analysis.by_module().items()}
        uncounted = {k: int(v) for k, v in sorted(analysis.unsupported_ops().items()) if k not in _FREE_OPS}
    return FlopReport(total, by_module, uncounted)
