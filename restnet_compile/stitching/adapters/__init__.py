"""Stitching layers (adapters): the base class and registry, then one module per kind of join.

The families import :mod:`.base`; this package imports the families, so importing it fills :data:`ADAPTERS`.
"""

from restnet_compile.stitching.adapters import (  # noqa: F401  (registration)
    map_to_map,
    map_to_tokens,
    tokens_to_map,
    tokens_to_tokens,
)
from restnet_compile.stitching.adapters._fit import solve_least_squares
from restnet_compile.stitching.adapters.base import (
    ADAPTERS,
    Adapter,
    adapter_for,
    choose_adapter,
    register_adapter,
    why_no_adapter,
)
from restnet_compile.stitching.adapters.map_to_map import Conv1x1Adapter

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Conv1x1Adapter",
    "adapter_for",
    "choose_adapter",
    "register_adapter",
    "solve_least_squares",
    "why_no_adapter",
]
