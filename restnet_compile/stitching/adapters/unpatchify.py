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

from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.stitching.adapters.base import ADAPTERS, Adapter, solve_least_squares
from restnet_compile.stitching.adapters.tokens import _grid_problem, _kind_problem, grid_factor, tokens_to_grid

NAME = "tokens-to-map-cls"
MLP_NAME = "tokens-to-map-mlp"


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

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        grid = tokens_to_grid(x, self.src.prefix_tokens, self.src.grid)
        return F.avg_pool2d(grid, self.down) if self.down > 1 else grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.unpatch(self._grid(x))
        if self.cls is None:
            return out
        return out + self.cls(x[:, : self.src.prefix_tokens].flatten(1))[:, :, None, None]

    def _solve(
        self, x: torch.Tensor, y: torch.Tensor, ridge: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Per-cell patch weights ``(D, C, s, s)``, bias ``(C,)``, class weights ``(C, prefix * D)`` and the R^2."""
        s, d, c = self.up, self.src.channels, self.dst.channels
        grid = self._grid(x).double()  # B, D, h, w
        b, _, h, w = grid.shape
        patch = grid.permute(0, 2, 3, 1)[:, :, None, :, None, :]  # B, h, 1, w, 1, D
        cell = torch.eye(s * s, dtype=torch.float64).reshape(1, 1, s, 1, s, s * s, 1)
        feats = (patch[..., None, :] * cell).reshape(b, h * s, w * s, s * s * d)  # one-hot cell x patch token
        parts = [feats.reshape(-1, s * s * d)]
        n_cls = d * self.src.prefix_tokens
        if n_cls:
            cls = x[:, : self.src.prefix_tokens].flatten(1).double()
            parts.append(cls[:, None, :].expand(b, h * s * w * s, n_cls).reshape(-1, n_cls))
        xs = torch.cat(parts, 1).numpy()
        ys = y.double().permute(0, 2, 3, 1).reshape(-1, c).numpy()
        sol, bias, r2 = solve_least_squares(xs, ys, ridge)
        per_cell = sol[: s * s * d].reshape(s, s, d, c).transpose(2, 3, 0, 1)  # (ky, kx, D, C) -> (D, C, ky, kx)
        return per_cell, bias, sol[s * s * d :].T, r2

    def _load(self, per_cell: np.ndarray, bias: np.ndarray, cls: np.ndarray) -> None:
        self.unpatch.weight.copy_(torch.from_numpy(per_cell.astype(np.float32)))
        self.unpatch.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        if self.cls is not None:
            self.cls.weight.copy_(torch.from_numpy(cls.astype(np.float32)))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        """Joint ridge fit of the per-cell patch weights, the shared class weights and the bias (see module doc)."""
        per_cell, bias, cls, r2 = self._solve(x, y, ridge)
        self._load(per_cell, bias, cls)
        return r2


@ADAPTERS.register(MLP_NAME)
class TokensToMapMlpAdapter(TokensToMapClsAdapter):
    """``tokens-to-map-cls`` to ``2 C`` hidden channels, BatchNorm, ReLU, then a 1x1 conv to ``C``.

    Initialised like ``conv-bn-relu``: the hidden layer holds the least-squares map and its negation
    (``relu(h) - relu(-h) = h``), and the last conv is refitted by least squares on the hidden features, so the fit
    starts at least as good as ``tokens-to-map-cls``.
    """

    def __init__(self, src: FeatureSpec, dst: FeatureSpec) -> None:
        super().__init__(src, dst)
        d, c = src.channels, dst.channels
        self.unpatch = nn.ConvTranspose2d(d, 2 * c, self.up, stride=self.up)
        self.cls = nn.Linear(d * src.prefix_tokens, 2 * c, bias=False) if src.prefix_tokens else None
        self.bn = nn.BatchNorm2d(2 * c)
        self.out = nn.Conv2d(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(super().forward(x))))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4) -> float:
        per_cell, bias, cls, _ = self._solve(x, y, ridge)
        self._load(np.concatenate([per_cell, -per_cell], 1), np.concatenate([bias, -bias]), np.concatenate([cls, -cls]))
        h = super().forward(x)  # BatchNorm starts as the identity on the calibration features' statistics
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3))
        self.bn.running_mean.copy_(mean)
        self.bn.running_var.copy_(var)
        self.bn.weight.copy_((var + self.bn.eps).sqrt())
        self.bn.bias.copy_(mean)
        hidden = torch.relu(self.bn(h)).permute(0, 2, 3, 1).reshape(-1, h.shape[1]).double().numpy()
        ys = y.double().permute(0, 2, 3, 1).reshape(-1, self.dst.channels).numpy()
        w2, b2, r2 = solve_least_squares(hidden, ys, ridge * 1e-2)
        self.out.weight.copy_(torch.from_numpy(w2.T.astype(np.float32))[:, :, None, None])
        self.out.bias.copy_(torch.from_numpy(b2.astype(np.float32)))
        return r2
