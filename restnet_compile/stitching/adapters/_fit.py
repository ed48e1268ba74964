"""Closed-form fitting shared by every adapter: ridge least squares, R^2, weight loading, BatchNorm identity init."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def solve_least_squares(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression with bias, in closed form: ``y ~ x @ w + b``.

    Args:
        x: ``(samples, in_features)``.
        y: ``(samples, out_features)``.
        ridge: Tikhonov factor relative to the mean diagonal of ``x^T x`` (keeps the solve well posed).

    Returns:
        ``w`` of shape ``(in_features, out_features)``, ``b`` of shape ``(out_features,)`` and the fit's R^2.
    """
    x = x.astype(np.float64, copy=False)  # rows of pixels can be large: no copy of what is float64 already
    y = y.astype(np.float64, copy=False)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
    b = my - mx @ w
    resid = ((yc - xc @ w) ** 2).sum()
    total = max(float((yc**2).sum()), 1e-12)
    return w, b, float(1.0 - resid / total)


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` for ``y`` (rows: samples), over all columns together."""
    total = max(float(((y - y.mean(0)) ** 2).sum()), 1e-12)
    return float(1.0 - ((y - pred) ** 2).sum() / total)


def pixels(x: torch.Tensor) -> np.ndarray:
    """``B, C, H, W`` map -> ``B*H*W, C`` float64 array (one row per pixel)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double().numpy()


def set_weights(layer: nn.Linear | nn.Conv2d, w: np.ndarray, b: np.ndarray | None = None) -> None:
    """Load an ``(in, out)`` matrix (and a bias) into a linear layer or a 1x1 convolution."""
    layer.weight.copy_(torch.from_numpy(w.T.astype(np.float32)).reshape(layer.weight.shape))
    if b is not None and layer.bias is not None:
        layer.bias.copy_(torch.from_numpy(b.astype(np.float32)))


def mirrored(w: np.ndarray, b: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``[w, -w]`` along ``axis`` and ``[b, -b]``: ``relu(h) - relu(-h) = h`` keeps the linear fit in reach."""
    return np.concatenate([w, -w], axis), np.concatenate([b, -b])


def identity_batchnorm(bn: nn.BatchNorm2d, h: torch.Tensor) -> None:
    """Set ``bn``'s statistics to those of ``h`` (``B, C, H, W``) and its affine map to undo them.

    In eval mode ``bn(h) == h`` on these features, and the statistics stay meaningful for tuning.
    """
    mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3)) + bn.eps
    assert bn.running_mean is not None and bn.running_var is not None, "a BatchNorm that tracks running statistics"
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var - bn.eps)
    bn.weight.copy_(var.sqrt())
    bn.bias.copy_(mean)


def refit_after_relu(bn: nn.BatchNorm2d, out: nn.Conv2d, h: torch.Tensor, ys: np.ndarray, ridge: float) -> float:
    """BatchNorm identity on hidden ``h``, then the output 1x1 conv refitted by least squares on ``relu(bn(h))``.

    Returns:
        The R^2 of the refitted output for ``ys`` (``B*H*W, C_out``).
    """
    identity_batchnorm(bn, h)
    hidden = pixels(torch.relu(bn(h)))
    w2, b2, _ = solve_least_squares(hidden, ys, ridge * 1e-2)
    set_weights(out, w2, b2)
    return r2(hidden @ w2 + b2, ys)
