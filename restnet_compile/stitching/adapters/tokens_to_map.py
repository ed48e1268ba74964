"""Tokens -> map (transformer to CNN): ``tokens-to-map-mlp``, an un-patchify stage, then BatchNorm, ReLU, 1x1 conv.

A CNN suffix needs what a plain "drop the class token, reshape, repeat each patch over its cells" join loses: a ViT
trained on its class token keeps its summary of the image there, and a patch token describes its whole patch, not
one value for all of its cells. The un-patchify stage
  * gives each of the ``s x s`` cells of a patch its own linear map of the patch token: a transposed convolution with
    kernel = stride = ``s`` (``s = 1``: a plain 1x1 convolution; a coarser map is average-pooled first);
  * adds the class token(s), through one linear layer, to every cell of the map (a per-image, per-channel offset).

It maps to ``2 C`` hidden channels, then BatchNorm, ReLU and a 1x1 conv to ``C``. Initialised like ``conv-bn-relu``:
:func:`fit_unpatchify` solves one closed-form ridge regression per output cell ``y[c] ~ W_k x_patch + U x_cls + b``
(``k``: the cell's position inside its patch; the class weights ``U`` and the bias are shared, exactly as the module
computes); the hidden layer holds that map and its negation (``relu(h) - relu(-h) = h``), and the last conv is
refitted by least squares on the hidden features, so the fit starts at least as good as the linear un-patchify.
Export: ConvTranspose (TFLite TRANSPOSE_CONV), FullyConnected, a broadcast Add, BatchNorm (folded), Relu, Conv.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters._fit import mirrored, pixels, refit_after_relu, solve_least_squares
from restnet_compile.stitching.adapters.base import Adapter, register_adapter
from restnet_compile.stitching.adapters.grid import grid_factor, grid_problem, tokens_to_grid


def fit_unpatchify(
    grid: torch.Tensor, cls: torch.Tensor | None, y: torch.Tensor, s: int, ridge: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Joint ridge fit of per-cell patch weights, shared class-token weights and a bias (see the module doc).

    Args:
        grid: Patch grid ``B, D, h, w`` (already pooled to the target's grid when the map is coarser).
        cls: Flattened prefix tokens ``B, P * D``, or None when there are none.
        y: Target map ``B, C, h * s, w * s``.
        s: Cells per patch side.
        ridge: Tikhonov factor of :func:`solve_least_squares`.

    Returns:
        Patch weights ``(D, C, s, s)`` (a ConvTranspose2d weight), bias ``(C,)``, class weights ``(C, P * D)`` and R^2.
    """
    b, d, h, w = grid.shape
    patch = grid.double().permute(0, 2, 3, 1)[:, :, None, :, None, :]  # B, h, 1, w, 1, D
    cell = torch.eye(s * s, dtype=torch.float64).reshape(1, 1, s, 1, s, s * s, 1)
    feats = (patch[..., None, :] * cell).reshape(b, h * s, w * s, s * s * d)  # one-hot cell x patch token
    parts = [feats.reshape(-1, s * s * d)]
    if cls is not None:
        parts.append(cls.double()[:, None, :].expand(b, h * s * w * s, cls.shape[1]).reshape(-1, cls.shape[1]))
    sol, bias, r2 = solve_least_squares(torch.cat(parts, 1).numpy(), pixels(y), ridge)
    per_cell = sol[: s * s * d].reshape(s, s, d, -1).transpose(2, 3, 0, 1)  # (ky, kx, D, C) -> (D, C, ky, kx)
    return per_cell, bias, sol[s * s * d :].T, r2


@register_adapter("tokens-to-map-mlp", ("tokens", "map"), plan_priority=0)
class TokensToMapMlpAdapter(Adapter):
    """tokens -> map: per-cell un-patchify plus the class token broadcast (2 C), BatchNorm, ReLU, 1x1 conv (C)."""

    @classmethod
    def shape_problem(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return grid_problem(cls.name, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        mode, factor = grid_factor(src.grid, dst.grid)  # type: ignore[misc]
        self.down = factor if mode == "down" else 1
        self.up = factor if mode == "up" else 1
        d, c = src.channels, dst.channels
        self.unpatch = nn.ConvTranspose2d(d, 2 * c, self.up, stride=self.up)
        self.cls = nn.Linear(d * src.prefix_tokens, 2 * c, bias=False) if src.prefix_tokens else None
        self.bn = nn.BatchNorm2d(2 * c)
        self.out = nn.Conv2d(2 * c, c, 1)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        grid = tokens_to_grid(x, self.src.prefix_tokens, self.src.grid)
        return F.avg_pool2d(grid, self.down) if self.down > 1 else grid

    def _class_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.src.prefix_tokens].flatten(1)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The un-patchify stage: per-cell maps of the patch tokens plus the class tokens' offset (``2 C`` maps)."""
        out = self.unpatch(self._grid(x))
        return out if self.cls is None else out + self.cls(self._class_tokens(x))[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.hidden(x))))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        tokens = None if self.cls is None else self._class_tokens(x)
        per_cell, bias, cls, _ = fit_unpatchify(self._grid(x), tokens, y, self.up, ridge)
        per_cell, bias = mirrored(per_cell, bias)
        self.unpatch.weight.copy_(torch.from_numpy(per_cell.astype(np.float32)))
        assert self.unpatch.bias is not None
        self.unpatch.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        if self.cls is not None:
            self.cls.weight.copy_(torch.from_numpy(np.concatenate([cls, -cls]).astype(np.float32)))
        return refit_after_relu(self.bn, self.out, self.hidden(x), pixels(y), ridge)
