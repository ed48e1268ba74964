"""Grids shared by the adapters that join token sequences (transformers) and feature maps (CNNs).

A token sequence is read as ``prefix`` tokens (class token, distillation token) followed by a square patch grid (see
:attr:`FeatureSpec.grid`). Grids and maps are resampled by an integer factor, the same in both directions: average
pooling to go down, nearest-neighbour repetition to go up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restnet_compile.models.blocks import FeatureSpec


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


def grid_problem(name: str, src: FeatureSpec, dst: FeatureSpec) -> str | None:
    """Why adapter ``name`` cannot resample ``src``'s grid to ``dst``'s (None: one integer factor does it)."""
    if (src.kind == "tokens" and src.grid[0] == 0) or (dst.kind == "tokens" and dst.grid[0] == 0):
        return f"adapter {name}: no patch grid in {src.describe()} -> {dst.describe()}"
    if grid_factor(src.grid, dst.grid) is None:
        return (
            f"adapter {name} cannot resample grid {src.grid[0]}x{src.grid[1]} ({src.describe()}) to "
            f"{dst.grid[0]}x{dst.grid[1]} ({dst.describe()}): needs one integer factor"
        )
    return None


def tokens_to_grid(x: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """``B, N, D`` tokens -> ``B, D, H, W`` map of the patch grid (prefix tokens dropped)."""
    b, _, d = x.shape
    return x[:, prefix:].transpose(1, 2).reshape(b, d, grid[0], grid[1])


def grid_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``B, D, H, W`` map -> ``B, H*W, D`` tokens."""
    return x.flatten(2).transpose(1, 2)
