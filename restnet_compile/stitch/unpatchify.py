"""``tokens-to-map-cls``: a tokens -> map join that keeps what ``tokens-to-map`` throws away.

``tokens-to-map`` drops the class token and repeats each patch token over the ``s x s`` cells it covers when the map
is finer than the patch grid. Both lose information the CNN suffix needs: a ViT trained on its class token keeps its
summary of the image there, and a patch token describes its whole patch, not one value for all of its cells.

This adapter
  * un-patchifies: a transposed convolution with kernel = stride = ``s`` gives each of the ``s x s`` cells of a patch
    its own linear map of the patch token (``s = 1``: a plain 1x1 convolution; a coarser map is average-pooled first);
  * adds the class token(s), through one linear layer, to every cell of the map (a per-image, per-channel offset).

Its least-squares initialisation is one closed-form ridge regression per output cell ``y[c] ~ W_k x_patch +
U x_cls + b`` where ``k`` is the cell's position inside its patch: the patch weights ``W_k`` are per cell, the class
weights ``U`` and the bias are shared, exactly as the module computes. Export: ConvTranspose (TFLite
TRANSPOSE_CONV), FullyConnected and a broadcast Add.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restnet_compile.stitch.adapters import ADAPTERS, Adapter, solve_least_squares
from restnet_compile.stitch.token_adapters import _grid_problem, _kind_problem, grid_factor, tokens_to_grid
from restnet_compile.zoo.blocks import FeatureSpec

NAME = "tokens-to-map-cls"


@ADAPTERS.register(NAME)
class TokensToMapClsAdapter(Adapter):
    """tokens -> map: per-cell un-patchify of the patch tokens plus a linear map of the class token, broadcast."""

    @classmethod
    def incompatibility(cls, src: FeatureSpec, dst: FeatureSpec) -> str | None:
        return _kind_problem(NAME, src, dst, ("tokens", "map")) or _grid_problem(NAME, src, dst)

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        mode, factor = grid_factor(src.grid, dst.grid)  # type: ignore[misc]
        self.down = factor if mode == "down" else 1
        self.up = factor if mode == "up" else 1
        d, c = src.channels, dst.channels
        self.unpatch = nn.ConvTranspose2d(d, c, self.up, stride=self.up)
        self.cls = nn.Linear(d * src.prefix_tokens, c, bias=False) if src.prefix_tokens else None

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """No parameter-free stage worth caching (the token -> grid reshape is free)."""
        return x

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
        """Joint ridge fit of the per-cell patch weights, the shared class weights and the bias (see module doc)."""
        s, d, c = self.up, self.src.channels, self.dst.channels
        grid = self._grid(x).double()  # B, D, h, w
        b, _, h, w = grid.shape
        patch = grid.permute(0, 2, 3, 1)[:, :, None, :, None, :]  # B, h, 1, w, 1, D
        cell = torch.eye(s * s, dtype=torch.float64).reshape(1, 1, s, 1, s, s * s, 1)
        feats = (patch[..., None, :] * cell).reshape(b, h * s, w * s, s * s * d)  # one-hot cell x patch token
        parts = [feats.reshape(-1, s * s * d)]
        if self.cls is not None:
            cls = x[:, : self.src.prefix_tokens].flatten(1).double()
            parts.append(cls[:, None, :].expand(b, h * s * w * s, cls.shape[1]).reshape(-1, cls.shape[1]))
        xs = torch.cat(parts, 1).numpy()
        ys = y.double().permute(0, 2, 3, 1).reshape(-1, c).numpy()
        sol, bias, r2 = solve_least_squares(xs, ys, ridge)
        per_cell = sol[: s * s * d].reshape(s, s, d, c)  # (ky, kx, D, C)
        self.unpatch.weight.copy_(torch.from_numpy(per_cell.transpose(2, 3, 0, 1).astype(np.float32)))
        self.unpatch.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        if self.cls is not None:
            self.cls.weight.copy_(torch.from_numpy(sol[s * s * d :].T.astype(np.float32)))
        return r2
