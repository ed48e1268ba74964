"""The identity of a torch module: a digest of its architecture and of every tensor of its state (cache keys, and
a model converted elsewhere matched to the one it stands for)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def module_digest(module: nn.Module) -> str:
    """sha256 of ``module``'s architecture (its repr) and of every tensor of its state (names, dtypes, bytes)."""
    h = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
