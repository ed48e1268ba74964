"""Adapters that join token sequences (transformers) to feature maps (CNNs) and to each other.

A token sequence is read as ``prefix`` tokens (class token, distillation token) followed by a square patch grid (see
:attr:`FeatureSpec.grid`). Grids and maps are resampled by an integer factor, the same in both directions: average
pooling to go down, nearest-neighbour repetition to go up. Every adapter has a closed-form least-squares
initialisation with bias, fitted on calibration features.

* ``token-linear`` (tokens -> tokens): one linear layer applied to every token; the class token is kept (and goes
  through the same linear layer), the patch grid is resampled when the grids differ.
* ``map-to-tokens`` (map -> tokens): resample the map to the token grid, a 1x1 convolution, flatten; a position
  embedding (one bias per grid position) and the class token (a linear layer on the globally pooled map) are fitted
  in closed form with the convolution.
* ``tokens-to-map`` (tokens -> map): drop the prefix tokens, reshape the grid to a map, resample, a 1x1 convolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters.base import ADAPTERS, Adapter, solve_least_squares


def grid_factor(src: tuple[int, int], dst: tuple[int, int]) -> tuple[str, int] | None:
    """How to resample grid ``src`` to ``dst``: ("same"|"down"|"up", factor), or None if no integer factor fits."""
    (sh, sw), (dh, dw) = src, dst
    if (sh, sw) == (dh, dw):
        return ("same", 1)
    if dh and dw and sh % dh == 0 and sw % dw == 0 and sh // dh == sw // dw:
        return ("down", sh // dh)
    if sh and sw and dh % sh == 0 and dw % sw == 0 and dh // sh == dw // sw:
        return ("up", dh // sh)
    return None


def resample(x: torch.Tensor, how: tuple[str, int]) -> torch.Tensor:
    """Resample a ``B, C, H, W`` map by an integer factor (average pooling down, nearest neighbour up)."""
    mode, factor = how
    if mode == "down":
        return F.avg_pool2d(x, factor)
    if mode == "up":
        return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    return x


def _grid_problem(name: str, src: FeatureSpec, dst: FeatureSpec) -> str | None:
    if (src.kind == "tokens" and src.grid[0] == 0) or (dst.kind == "tokens" and dst.grid[0] == 0):
        return f"adapter {name}: no patch grid in {src.describe()} -> {dst.describe()}"
    if grid_factor(src.grid, dst.grid) is None:
        return (
            f"adapter {name} cannot resample grid {src.grid[0]}x{src.grid[1]} ({src.describe()}) to "
            f"{dst.grid[0]}x{dst.grid[1]} ({dst.describe()}): needs one integer factor"
        )
    return None


def _kind_problem(name: str, src: FeatureSpec, dst: FeatureSpec, want: tuple[str, str]) -> str | None:
    if (src.kind, dst.kind) != want:
        return f"adapter {name} joins {want[0]} -> {want[1]}, not {src.describe()} -> {dst.describe()}"
    return None


def tokens_to_grid(x: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """``B, N, D`` tokens -> ``B, D, H, W`` map of the patch grid (prefix tokens dropped)."""
    b, _, d = x.shape
    return x[:, prefix:].transpose(1, 2).reshape(b, d, grid[0], grid[1])


def grid_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``B, D, H, W`` map -> ``B, H*W, D`` tokens."""
    return x.flatten(2).transpose(1, 2)


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    total = max(float(((y - y.mean(0)) ** 2).sum()), 1e-12)
    return float(1.0 - ((y - pred) ** 2).sum() / total)


def _set_linear(layer: nn.Linear | nn.Conv2d, w: np.ndarray, b: np.ndarray) -> None:
    weight = torch.from_numpy(w.T.astype(np.float32))
    layer.weight.copy_(weight.reshape(layer.weight.shape))
    layer.bias.copy_(torch.from_numpy(b.astype(np.float32)))


@ADAPTERS.register("token-linear")
class TokenLinearAdapter(Adapter):
    """tokens -> tokens: resample the patch grid if needed, then one linear layer per token (class token kept)."""

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return _kind_problem("token-linear", src, dst, ("tokens", "tokens")) or _grid_problem("token-linear", src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        self.how = grid_factor(src.grid, dst.grid)
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
        _set_linear(self.linear, w, b)
        return r2


@ADAPTERS.register("map-to-tokens")
class MapToTokensAdapter(Adapter):
    """map -> tokens: resample to the token grid, 1x1 conv, flatten, add a position embedding, prepend class token."""

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return _kind_problem("map-to-tokens", src, dst, ("map", "tokens")) or _grid_problem("map-to-tokens", src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        self.how = grid_factor(src.grid, dst.grid)
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
        _set_linear(self.conv, w, pos.mean(0))
        self.pos_embed.copy_(torch.from_numpy((pos - pos.mean(0)).astype(np.float32))[None])
        pred = [xs @ w + pos]
        if self.cls is not None:
            pooled = x.mean(dim=(2, 3)).numpy()
            wc, bc, _ = solve_least_squares(pooled, y[:, :p].reshape(len(y), -1).numpy(), ridge)
            _set_linear(self.cls, wc, bc)
            pred.insert(0, (pooled @ wc + bc).reshape(len(y), p, d))
        return _r2(np.concatenate(pred, axis=1).reshape(-1, d), y.numpy().reshape(-1, d))


@ADAPTERS.register("tokens-to-map")
class TokensToMapAdapter(Adapter):
    """tokens -> map: drop the class token, reshape the patch grid to a map, resample, 1x1 conv."""

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return _kind_problem("tokens-to-map", src, dst, ("tokens", "map")) or _grid_problem("tokens-to-map", src, dst)

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
        xs = self._map(x).permute(0, 2, 3, 1).reshape(-1, self.src.channels).numpy()
        ys = y.permute(0, 2, 3, 1).reshape(-1, self.dst.channels).numpy()
        w, b, r2 = solve_least_squares(xs, ys, ridge)
        _set_linear(self.conv, w, b)
        return r2
