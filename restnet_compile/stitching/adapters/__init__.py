"""Stitching layers (adapters): the base class and registry, then each family, registered in one direction.

The families import :mod:`.base`; this package imports the families, so importing it fills :data:`ADAPTERS`.
"""

from restnet_compile.stitching.adapters import maps, tokens, unpatchify  # noqa: F401  (registration)
from restnet_compile.stitching.adapters.base import (
    ADAPTERS,
    Adapter,
    Conv1x1Adapter,
    adapter_for,
    choose_adapter,
    solve_least_squares,
)

__all__ = ["ADAPTERS", "Adapter", "Conv1x1Adapter", "adapter_for", "choose_adapter", "solve_least_squares"]
