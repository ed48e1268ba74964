"""The manifest's description of segments: model files holding a block range, run by variants as chains.

Part of the manifest's types (:mod:`.manifest` holds the rest); standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Boundary:
    """A segment's input or output tensor as stored in its model file: shape without the batch dimension (in the
    file's layout, NHWC for feature maps), dtype, and the int8 quantization (``scale`` 0 for float tensors)."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One model file holding a block range of one donor (``large`` / ``small``, ``start`` to ``stop`` exclusive,
    then the donor's head when ``head``) or one variant's adapter (``model`` ``adapter``, no blocks).

    A segment is stored and quantized once, whichever variants run it; ``model_bytes`` is its file's size and the arena
    figures are TFLite Micro's (null elsewhere).
    """

    id: str
    model: str
    start: int
    stop: int
    head: bool
    file: str
    signature: str
    model_bytes: int
    input: Boundary
    output: Boundary
    arena_bytes: int | None
    arena_bytes_measured: int | None
