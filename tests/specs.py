"""Feature-spec shorthands and a weight randomiser shared by the adapter tests."""

from __future__ import annotations

import torch

from restnet_compile.models import FeatureSpec


def m(c: int, h: int) -> FeatureSpec:
    """A ``c x h x h`` feature map."""
    return FeatureSpec("map", (c, h, h))


def t(n: int, d: int) -> FeatureSpec:
    """A sequence of ``n`` tokens of width ``d``."""
    return FeatureSpec("tokens", (n, d))


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded standard-normal values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
