"""Adapters whose measurements lost, kept for the benchmarks that compare against them (README, *Measured*).

Importing this module registers them in the package's adapter registry (never planned: a benchmark selects one
with ``tune.adapter``):

* ``lowrank-dw`` (map -> map): 1x1 conv to rank ``r``, 1x1 conv to ``C_dst``, depthwise 3x3 (identity at init). The
  two 1x1 convs hold the reduced-rank least-squares solution (the LS fit projected on its top ``r`` principal
  directions).
* ``residual`` (map -> map): the ``conv1x1`` LS map plus a branch 3x3 conv -> ReLU -> 1x1 conv whose last conv is
  zero, so the output at init IS the LS solution; tuning grows the branch.
* ``tokens-to-map`` (tokens -> map): drop the prefix tokens, reshape the grid to a map, resample, a 1x1 convolution.
* ``tokens-to-map-cls`` (tokens -> map): the linear un-patchify stage of the package's ``tokens-to-map-mlp`` alone
  (per-cell transposed convolution plus the class token broadcast), fitted by the same joint least squares
  (:func:`fit_unpatchify`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters import Adapter, register_adapter, solve_least_squares
from restnet_compile.stitching.adapters._fit import pixels, r2, set_weights
from restnet_compile.stitching.adapters.grid import grid_factor, grid_problem, resample, tokens_to_grid
from restnet_compile.stitching.adapters.map_to_map import Conv1x1Adapter
from restnet_compile.stitching.adapters.tokens_to_map import fit_unpatchify


@register_adapter("lowrank-dw", ("map", "map"))
class LowRankDwAdapter(Conv1x1Adapter):
    """1x1 conv to rank r -> 1x1 conv to C_dst -> depthwise 3x3 (identity at init)."""

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
        xs, ys = pixels(self._resize(x)), pixels(y)
        w, b, _ = solve_least_squares(xs, ys, ridge)
        fitted = (xs - xs.mean(0)) @ w
        _, _, vt = np.linalg.svd(fitted, full_matrices=False)
        v = vt[: self.rank].T  # (C_dst, r): top principal directions of the fit (reduced-rank regression)
        b = b + (xs.mean(0) @ w) @ (np.eye(len(b)) - v @ v.T)  # the projection is of centred fits: keep the mean
        set_weights(self.conv, w @ v)
        set_weights(self.up, v.T, b)
        self.dw.weight.zero_()
        self.dw.weight[:, 0, 1, 1] = 1.0
        self.dw.bias.zero_()
        return r2(xs @ w @ v @ v.T + b, ys)


@register_adapter("residual", ("map", "map"))
class ResidualAdapter(Conv1x1Adapter):
    """LS 1x1 conv plus a zero-initialised branch: 3x3 conv -> ReLU -> 1x1 conv (output == LS fit at init)."""

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        c = dst.channels
        self.branch_in = nn.Conv2d(src.channels, c, 3, padding=1)
        self.branch_out = nn.Conv2d(c, c, 1)

    def trainable(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.branch_out(torch.relu(self.branch_in(x)))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        fit = super().least_squares_init(x, y, ridge)
        self.branch_in.weight.zero_()  # the branch's centre tap starts from the LS features, not from noise
        self.branch_in.weight[:, :, 1, 1] = self.conv.weight[:, :, 0, 0]
        self.branch_in.bias.copy_(self.conv.bias)
        self.branch_out.weight.zero_()
        self.branch_out.bias.zero_()
        return fit


@register_adapter("tokens-to-map", ("tokens", "map"))
class TokensToMapAdapter(Adapter):
    """tokens -> map: drop the class token, reshape the patch grid to a map, resample, 1x1 conv."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return grid_problem(cls.name, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        self.how = grid_factor(src.grid, dst.grid)
        self.conv = nn.Conv2d(src.channels, dst.channels, 1)

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        return resample(tokens_to_grid(x, self.src.prefix_tokens, self.src.grid), self.how)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._map(x))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        w, b, fit = solve_least_squares(pixels(self._map(x)), pixels(y), ridge)
        set_weights(self.conv, w, b)
        return fit


@register_adapter("tokens-to-map-cls", ("tokens", "map"))
class TokensToMapClsAdapter(Adapter):
    """tokens -> map: per-cell un-patchify of the patch tokens plus a linear map of the class token, broadcast."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return grid_problem(cls.name, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        mode, factor = grid_factor(src.grid, dst.grid)  # type: ignore[misc]
        self.down = factor if mode == "down" else 1
        self.up = factor if mode == "up" else 1
        d, c = src.channels, dst.channels
        self.unpatch = nn.ConvTranspose2d(d, c, self.up, stride=self.up)
        self.cls = nn.Linear(d * src.prefix_tokens, c, bias=False) if src.prefix_tokens else None

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        grid = tokens_to_grid(x, self.src.prefix_tokens, self.src.grid)
        return F.avg_pool2d(grid, self.down) if self.down > 1 else grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.unpatch(self._grid(x))
        if self.cls is None:
            return out
        return out + self.cls(x[:, : self.src.prefix_tokens].flatten(1))[:, :, None, None]

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        tokens = None if self.cls is None else x[:, : self.src.prefix_tokens].flatten(1)
        per_cell, bias, cls, fit = fit_unpatchify(self._grid(x), tokens, y, self.up, ridge)
        self.unpatch.weight.copy_(torch.from_numpy(per_cell.astype(np.float32)))
        self.unpatch.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        if self.cls is not None:
            self.cls.weight.copy_(torch.from_numpy(cls.astype(np.float32)))
        return fit
