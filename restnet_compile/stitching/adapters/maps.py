"""Richer map -> map adapters, each initialised in closed form so that it starts at (or above) the 1x1 LS fit.

* ``conv-bn-relu``: 1x1 conv to ``2 * C_dst`` channels, BatchNorm, ReLU, 1x1 conv to ``C_dst``. The first conv holds
  the least-squares map ``W`` and its negation, so ``relu(Wx) - relu(-Wx) = Wx``; the last conv is then refitted by
  least squares on the hidden features, so the fit is at least as good as ``conv1x1`` (the linear map stays in reach).
* ``lowrank-dw``: 1x1 conv to rank ``r``, 1x1 conv to ``C_dst``, depthwise 3x3 (identity at init). The two 1x1 convs
  hold the reduced-rank least-squares solution (the LS fit projected on its top ``r`` principal directions).
* ``residual``: the ``conv1x1`` LS map plus a branch 3x3 conv -> ReLU -> 1x1 conv whose last conv is zero, so the
  output at init IS the LS solution; tuning grows the branch.

All use only Conv (incl. depthwise), BatchNorm (folded by the exporters), Relu, Add and AveragePool, which the
ONNX -> TFLite int8 path and TFLite Micro support.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters.base import ADAPTERS, Conv1x1Adapter, solve_least_squares


def _pixels(x: torch.Tensor) -> np.ndarray:
    """``B, C, H, W`` -> ``B*H*W, C`` float64 array."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double().numpy()


def _set_conv(conv: nn.Conv2d, w: np.ndarray, b: np.ndarray | None) -> None:
    """Load a ``(in, out)`` matrix and bias into a 1x1 conv."""
    conv.weight.copy_(torch.from_numpy(w.T.astype(np.float32))[:, :, None, None])
    if b is not None and conv.bias is not None:
        conv.bias.copy_(torch.from_numpy(b.astype(np.float32)))


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    yc = y - y.mean(0)
    return float(1.0 - ((y - pred) ** 2).sum() / max(float((yc**2).sum()), 1e-12))


class _MapAdapter(Conv1x1Adapter):
    """Shared map -> map compatibility and resize of :class:`Conv1x1Adapter` (its ``conv`` is the LS map)."""

    name = "conv1x1"

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        why = super().incompatibility(src, dst)
        return why.replace("adapter conv1x1", f"adapter {cls.name}") if why else None


@ADAPTERS.register("conv-bn-relu")
class ConvBnReluAdapter(_MapAdapter):
    """1x1 conv (2 C_dst) -> BatchNorm -> ReLU -> 1x1 conv (C_dst)."""

    name = "conv-bn-relu"

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        c = dst.channels
        self.conv = nn.Conv2d(src.channels, 2 * c, 1)
        self.bn = nn.BatchNorm2d(2 * c)
        self.out = nn.Conv2d(2 * c, c, 1)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.conv(x))))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        xs, ys = _pixels(self._resize(x)), _pixels(y)
        w, b, _ = solve_least_squares(xs, ys, ridge)
        _set_conv(self.conv, np.concatenate([w, -w], 1), np.concatenate([b, -b]))
        h = self.conv(self._resize(x))  # BatchNorm normalises the hidden units (eval: a fixed affine map = identity)
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3)) + self.bn.eps
        self.bn.running_mean.copy_(mean)
        self.bn.running_var.copy_(var - self.bn.eps)
        self.bn.weight.copy_(var.sqrt())
        self.bn.bias.copy_(mean)
        hidden = _pixels(torch.relu(self.bn(h)))
        w2, b2, _ = solve_least_squares(hidden, ys, ridge * 1e-2)
        _set_conv(self.out, w2, b2)
        return _r2(hidden @ w2 + b2, ys)


@ADAPTERS.register("lowrank-dw")
class LowRankDwAdapter(_MapAdapter):
    """1x1 conv to rank r -> 1x1 conv to C_dst -> depthwise 3x3 (identity at init)."""

    name = "lowrank-dw"

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        c = dst.channels
        self.rank = max(4, min(src.channels, c) * 3 // 4)
        self.conv = nn.Conv2d(src.channels, self.rank, 1, bias=False)
        self.up = nn.Conv2d(self.rank, c, 1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.up(self.conv(x)))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        xs, ys = _pixels(self._resize(x)), _pixels(y)
        w, b, _ = solve_least_squares(xs, ys, ridge)
        fitted = (xs - xs.mean(0)) @ w
        _, _, vt = np.linalg.svd(fitted, full_matrices=False)
        v = vt[: self.rank].T  # (C_dst, r): top principal directions of the fit (reduced-rank regression)
        b = b + (xs.mean(0) @ w) @ (np.eye(len(b)) - v @ v.T)  # the projection is of centred fits: keep the mean
        _set_conv(self.conv, w @ v, None)
        _set_conv(self.up, v.T, b)
        self.dw.weight.zero_()
        self.dw.weight[:, 0, 1, 1] = 1.0
        self.dw.bias.zero_()
        return _r2(xs @ w @ v @ v.T + b, ys)


@ADAPTERS.register("residual")
class ResidualAdapter(_MapAdapter):
    """LS 1x1 conv plus a zero-initialised branch: 3x3 conv -> ReLU -> 1x1 conv (output == LS fit at init)."""

    name = "residual"

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        c = dst.channels
        self.branch_in = nn.Conv2d(src.channels, c, 3, padding=1)
        self.branch_out = nn.Conv2d(c, c, 1)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.branch_out(torch.relu(self.branch_in(x)))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        r2 = super().least_squares_init(x, y, ridge)
        self.branch_in.weight.zero_()  # the branch's centre tap starts from the LS features, not from noise
        self.branch_in.weight[:, :, 1, 1] = self.conv.weight[:, :, 0, 0]
        self.branch_in.bias.copy_(self.conv.bias)
        self.branch_out.weight.zero_()
        self.branch_out.bias.zero_()
        return r2
