"""Map -> tokens (CNN to transformer): ``map-to-tokens``.

Resample the map to the token grid, a 1x1 convolution, flatten; a position embedding (one bias per grid position) and
the class token (a linear layer on the globally pooled map) are fitted in closed form with the convolution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters._fit import r2, set_weights, solve_least_squares
from restnet_compile.stitching.adapters.base import Adapter, register_adapter
from restnet_compile.stitching.adapters.grid import grid_factor, grid_problem, grid_to_tokens, resample


@register_adapter("map-to-tokens", ("map", "tokens"), plan_priority=0)
class MapToTokensAdapter(Adapter):
    """map -> tokens: resample to the token grid, 1x1 conv, flatten, add a position embedding, prepend class token."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return grid_problem(cls.name, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        how = grid_factor(src.grid, dst.grid)
        assert how is not None, "joins() refuses grids that do not resample"
        self.how = how
        c, d, gh, gw = src.channels, dst.channels, *dst.grid
        self.conv = nn.Conv2d(c, d, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, gh * gw, d))
        self.cls = nn.Linear(c, d * dst.prefix_tokens) if dst.prefix_tokens else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = grid_to_tokens(self.conv(resample(x, self.how))) + self.pos_embed
        if self.cls is None:
            return tokens
        prefix = self.cls(x.mean(dim=(2, 3))).reshape(x.shape[0], self.dst.prefix_tokens, self.dst.channels)
        return torch.cat([prefix, tokens], dim=1)

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        """Fit conv weight and one bias per grid position (joint LS: centre per position), then the class token."""
        c, d, p = self.src.channels, self.dst.channels, self.dst.prefix_tokens
        xs = grid_to_tokens(resample(x, self.how)).numpy().astype(np.float64)  # B, P, C
        ys = y[:, p:].numpy().astype(np.float64)  # B, P, D
        mx, my = xs.mean(0), ys.mean(0)
        w, _, _ = solve_least_squares((xs - mx).reshape(-1, c), (ys - my).reshape(-1, d), ridge)
        pos = my - mx @ w  # P, D: the best bias for each position
        set_weights(self.conv, w, pos.mean(0))
        self.pos_embed.copy_(torch.from_numpy((pos - pos.mean(0)).astype(np.float32))[None])
        pred = [xs @ w + pos]
        if self.cls is not None:
            pooled = x.mean(dim=(2, 3)).numpy()
            wc, bc, _ = solve_least_squares(pooled, y[:, :p].reshape(len(y), -1).numpy(), ridge)
            set_weights(self.cls, wc, bc)
            pred.insert(0, (pooled @ wc + bc).reshape(len(y), p, d))
        return r2(np.concatenate(pred, axis=1).reshape(-1, d), y.numpy().reshape(-1, d))
