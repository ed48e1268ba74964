"""Map -> map adapters (CNN to CNN), each initialised in closed form.

* ``conv1x1`` (planned): resize to the destination grid (integer-factor average pooling), then a 1x1 convolution
  holding the least-squares map.
* ``conv-bn-relu`` (the default of ``tune.adapter``): 1x1 conv to ``2 * C_dst`` channels, BatchNorm, ReLU, 1x1 conv
  to ``C_dst``. The first conv holds the least-squares map ``W`` and its negation, so ``relu(Wx) - relu(-Wx) = Wx``;
  the last conv is then refitted by least squares on the hidden features, so the fit is at least as good as
  ``conv1x1`` (the linear map stays in reach).

Both use only Conv, BatchNorm (folded by the exporters), Relu and AveragePool, which the ONNX -> TFLite int8 path and
TFLite Micro support.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters._fit import mirrored, pixels, refit_after_relu, set_weights, solve_least_squares
from restnet_compile.stitching.adapters.base import Adapter, register_adapter


@register_adapter("conv1x1", ("map", "map"), plan_priority=0)
class Conv1x1Adapter(Adapter):
    """map -> map: resize to the destination grid (integer-factor average pooling), then a 1x1 convolution."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        (sh, sw), (dh, dw) = src.grid, dst.grid
        if sh % dh or sw % dw or sh // dh != sw // dw:
            if sh < dh or sw < dw:
                why = f"the suffix block's grid {dh}x{dw} is finer than the prefix's {sh}x{sw} (they only pool down)"
            else:
                why = f"grid {sh}x{sw} -> {dh}x{dw} needs one integer down-factor on both axes"
            return f"adapter {cls.name} cannot resize {src.describe()} to {dst.describe()}: {why}"
        return None

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        self.pool = src.shape[1] // dst.shape[1]
        self.conv = nn.Conv2d(src.channels, dst.channels, 1)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` at the destination grid; a map already there (``fixed`` applied) is left as it is."""
        at_grid = tuple(x.shape[-2:]) == tuple(self.dst.grid)
        return F.avg_pool2d(x, self.pool) if self.pool > 1 and not at_grid else x

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The resize to the destination grid (no parameters)."""
        return self._resize(x)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter on an already resized map; subclasses override this, not ``forward``."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trainable(self._resize(x))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        w, b, r2 = solve_least_squares(pixels(self._resize(x)), pixels(y), ridge)
        set_weights(self.conv, w, b)
        return r2


@register_adapter("conv-bn-relu", ("map", "map"))
class ConvBnReluAdapter(Conv1x1Adapter):
    """1x1 conv (2 C_dst) -> BatchNorm -> ReLU -> 1x1 conv (C_dst); the resize of :class:`Conv1x1Adapter` first."""

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
        xs, ys = pixels(self._resize(x)), pixels(y)
        w, b, _ = solve_least_squares(xs, ys, ridge)
        set_weights(self.conv, *mirrored(w, b))
        return refit_after_relu(self.bn, self.out, self.conv(self._resize(x)), ys, ridge)
