"""FLOPs with fvcore, with no silent zeros: every op fvcore could not count is listed.

Counts follow the convention of fvcore and of torchvision's published GFLOPS: one fused multiply-add is one FLOP
(ResNet-18 = 1.81 G). ``total`` holds the multiply-adds of the matrix ops only (convolution, linear, matmul, bmm,
einsum and attention), which is what the published figures count. fvcore counts ``scaled_dot_product_attention``
and ``_native_multi_head_attention`` (``nn.MultiheadAttention``'s inference fast path) as zero: handles here count
them.

Decision on element-wise ops (add, mul, activations), normalization and pooling: they are counted, one operation
per output element (pooling: per window element), but in a separate ``elementwise`` figure, not in ``total``. They
cost memory traffic more than arithmetic, the roofline latency model charges them through bytes moved, and adding
them to ``total`` would break the comparison with every published FLOP table. Anything left that is neither counted
nor free (views, reshapes) is listed in ``uncounted`` with how often it ran.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn


@dataclass(frozen=True)
class FlopReport:
    """FLOPs of one forward pass of a single image.

    Attributes:
        total: Multiply-adds of the matrix ops of the whole model.
        by_module: Matrix multiply-adds per module name (leaves and parents).
        uncounted: Ops fvcore saw but nothing counted, with how often they ran.
        elementwise: Element-wise, normalization and pooling operations (one per output element), not in ``total``.
        elementwise_by_module: ``elementwise`` per module name.
    """

    total: int
    by_module: dict[str, int]
    uncounted: dict[str, int]
    elementwise: int = 0
    elementwise_by_module: dict[str, int] = field(default_factory=dict)


# Ops that cost no arithmetic (views, shape bookkeeping, dropout in eval) are not worth listing as uncounted.
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
    "aten::dropout",
    "aten::dropout_",
    "aten::feature_dropout",
    "aten::chunk",
    "aten::split",
    "aten::cat",
    "aten::stack",
    "aten::repeat",
    "aten::zeros",
    "aten::ones",
    "aten::to",
    "aten::type_as",
    "aten::expand_as",
    "aten::Int",
    "aten::ScalarImplicit",
    "prim::TupleConstruct",
    "prim::ListConstruct",
    "prim::ListUnpack",
    "prim::TupleUnpack",
    "prim::Constant",
    "prim::NumToTensor",
}

_MATRIX_OPS = {
    "aten::addmm",
    "aten::bmm",
    "aten::_convolution",
    "aten::einsum",
    "aten::matmul",
    "aten::mm",
    "aten::linear",
    "aten::scaled_dot_product_attention",
    "aten::_native_multi_head_attention",
}

_MATRIX_SHORT = {op.removeprefix("aten::") for op in _MATRIX_OPS} | {"conv"}

# Element-wise ops: one operation per output element. Activations, arithmetic, softmax and reductions.
_ELEMENTWISE_OPS = [
    f"aten::{name}{suffix}"
    for name in (
        "add", "sub", "mul", "div", "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "silu",
        "gelu", "tanh", "softmax", "log_softmax", "clamp", "exp", "sqrt", "rsqrt", "pow", "neg", "abs", "mean",
        "sum", "leaky_relu", "elu", "erf",
    )
    for suffix in ("", "_")
]  # fmt: skip
# Normalization and pooling fvcore counts itself (by elements); they go into ``elementwise`` as well.
_FVCORE_ELEMENTWISE = {
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
}
_POOL_OPS = ("aten::max_pool2d", "aten::avg_pool2d", "aten::max_pool1d", "aten::avg_pool1d")


def _numel(shape: list[int] | None) -> int:
    n = 1
    for d in shape or []:
        n *= int(d)
    return n


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """``scaled_dot_product_attention(q, k, v)``: ``Q K^T`` and ``softmax(.) V`` multiply-adds.

    q is ``[..., L, E]``, k ``[..., S, E]``, v ``[..., S, Ev]``: batch * L * S * (E + Ev).
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = _numel(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def mha_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """``_native_multi_head_attention(q, k, v, embed_dim, heads, qkv_w, qkv_b, proj_w, proj_b, ...)``.

    Q, K, V and output projections plus the two attention matmuls, summed over heads: with q ``[B, L, E]`` and
    k ``[B, S, E]``: B * (L E^2 + 2 S E^2 + 2 L S E + L E^2).
    """
    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    batch, length, embed = (_numel(q[:-2]), q[-2], q[-1])
    source = k[-2]
    projections = length * embed * embed * 2 + 2 * source * embed * embed
    return batch * (projections + 2 * length * source * embed)


def elementwise_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """One operation per output element."""
    return _numel(get_shape(outputs[0]))


def pool_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """One comparison / addition per window element and output element."""
    kernel = inputs[1].toIValue() if len(inputs) > 1 else None
    window = _numel(list(kernel)) if kernel else 1
    return _numel(get_shape(outputs[0])) * window


def _analysis(model: nn.Module, x: torch.Tensor) -> FlopCountAnalysis:
    analysis = FlopCountAnalysis(model, x)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    analysis.set_op_handle("aten::_native_multi_head_attention", mha_flop_jit)
    for op in _ELEMENTWISE_OPS:
        analysis.set_op_handle(op, elementwise_flop_jit)
    for op in _POOL_OPS:
        analysis.set_op_handle(op, pool_flop_jit)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


def _is_matrix(op: str) -> bool:
    """fvcore reports ops by short name (``aten::_convolution`` -> ``conv``, ``aten::mm`` -> ``mm``)."""
    short = op.removeprefix("aten::")
    return short in _MATRIX_SHORT or op in _MATRIX_OPS


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> FlopReport:
    """Count multiply-adds of ``model`` on one input of ``input_shape`` (without batch dimension)."""
    model.eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        analysis = _analysis(model, torch.zeros(1, *input_shape))
        per_module = analysis.by_module_and_operator()
        by_module: dict[str, int] = {}
        elementwise_by_module: dict[str, int] = {}
        for name, ops in per_module.items():
            by_module[name] = int(sum(v for op, v in ops.items() if _is_matrix(op)))
            elementwise_by_module[name] = int(sum(v for op, v in ops.items() if not _is_matrix(op)))
        uncounted = Counter({k: int(v) for k, v in analysis.unsupported_ops().items() if k not in _FREE_OPS})
    return FlopReport(
        total=by_module.get("", 0),
        by_module=by_module,
        uncounted=dict(sorted(uncounted.items())),
        elementwise=elementwise_by_module.get("", 0),
        elementwise_by_module=elementwise_by_module,
    )


__all__ = ["FlopReport", "count_flops", "elementwise_flop_jit", "mha_flop_jit", "pool_flop_jit", "sdpa_flop_jit"]
