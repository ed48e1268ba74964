"""Tokens -> tokens (transformer to transformer): ``token-linear``, one linear layer applied to every token.

The class token is kept (and goes through the same linear layer); the patch grid is resampled when the grids differ,
and a different count of prefix tokens is filled with the mean patch token. Least-squares initialisation with bias.
"""

from __future__ import annotations

import torch
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters._fit import set_weights, solve_least_squares
from restnet_compile.stitching.adapters.base import Adapter, register_adapter
from restnet_compile.stitching.adapters.grid import grid_factor, grid_problem, grid_to_tokens, resample, tokens_to_grid


@register_adapter("token-linear", ("tokens", "tokens"), plan_priority=0)
class TokenLinearAdapter(Adapter):
    """tokens -> tokens: resample the patch grid if needed, then one linear layer per token (class token kept)."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return grid_problem(cls.name, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        how = grid_factor(src.grid, dst.grid)
        assert how is not None, "joins() refuses grids that do not resample"
        self.how = how
        self.linear = nn.Linear(src.channels, dst.channels)

    def _align(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens laid out as the destination's: its prefix count, then its grid (still ``src`` width)."""
        ps, pd = self.src.prefix_tokens, self.dst.prefix_tokens
        if self.how == ("same", 1) and ps == pd:
            return x
        grid = grid_to_tokens(resample(tokens_to_grid(x, ps, self.src.grid), self.how))
        prefix = x[:, :ps] if ps == pd else x[:, ps:].mean(1, keepdim=True).expand(-1, pd, -1)
        return torch.cat([prefix, grid], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self._align(x))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        xs = self._align(x).reshape(-1, self.src.channels).numpy()
        ys = y.reshape(-1, self.dst.channels).numpy()
        w, b, r2 = solve_least_squares(xs, ys, ridge)
        set_weights(self.linear, w, b)
        return r2
