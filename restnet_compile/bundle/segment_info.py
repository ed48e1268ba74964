"""Segments: model files holding a block range, run by variants as chains, and their boundary tensors.

The one description of a segment, from the exporter that writes it through the manifest to the runtime that runs it
(the exporter leaves the costs to the build, which fills them from the written files). Part of the manifest's
types (:mod:`.manifest` holds the rest); standard library only.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ITEM_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2}


@dataclass(frozen=True, kw_only=True)
class Boundary:
    """A segment's input or output tensor as stored in its model file: shape without the batch dimension (in the
    file's layout, NHWC for feature maps), dtype, and the int8 quantization (``scale`` 0 for float tensors)."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> Boundary:
        """The boundary an interpreter reports (LiteRT's input or output details: ``shape`` with the batch
        dimension, ``dtype``, ``quantization`` as ``(scale, zero_point)``)."""
        scale, zero = detail["quantization"]
        dtype = detail["dtype"]
        name = dtype if isinstance(dtype, str) else dtype.__name__ if isinstance(dtype, type) else dtype.name
        return cls(
            shape=tuple(int(d) for d in detail["shape"][1:]), dtype=name, scale=float(scale), zero_point=int(zero)
        )

    @property
    def nbytes(self) -> int:
        """Bytes of one tensor (batch 1)."""
        n = 1
        for d in self.shape:
            n *= d
        return n * _ITEM_BYTES.get(self.dtype, 4)


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One model file holding a block range of one donor (``large`` / ``small``, ``start`` to ``stop`` exclusive,
    then the donor's head when ``head``) or one variant's adapter (``model`` ``adapter``, no blocks).

    A segment is stored and quantized once, whichever variants run it; ``signature`` is "" for a file whose only graph
    runs it (TFLite Micro). ``model_bytes`` is its file's size and the arena figures are TFLite Micro's (null
    elsewhere): an exporter leaves them unset (0, None) and the build records them from the written files.
    """

    id: str
    model: str
    start: int
    stop: int
    head: bool
    file: str
    signature: str
    model_bytes: int = 0
    input: Boundary
    output: Boundary
    arena_bytes: int | None = None
    arena_bytes_measured: int | None = None


def chain_mismatch(chain: Sequence[Segment]) -> str | None:
    """The first pair of neighbours in ``chain`` that disagree on the shape or dtype they pass, described; None when
    every segment takes what its predecessor gives (scales may differ: the runtime requantizes)."""
    for a, b in itertools.pairwise(chain):
        if (a.output.shape, a.output.dtype) != (b.input.shape, b.input.dtype):
            return (
                f"segment {a.id} gives {list(a.output.shape)} {a.output.dtype} but segment {b.id} takes "
                f"{list(b.input.shape)} {b.input.dtype}"
            )
    return None
