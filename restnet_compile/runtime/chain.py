"""Run a variant stored as a chain of segments: each segment's output is the next one's input.

Between two int8 segments whose scales or zero points differ, the tensor is requantized in integers' terms:
``q2 = clamp(round((q1 - z1) * s1 / s2) + z2)``; where they agree it passes unchanged. Every segment's file must hold
the boundaries the manifest records, and every chain must pass one shape and dtype from segment to segment.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np

from restnet_compile.bundle.manifest import BundleError, Manifest
from restnet_compile.bundle.segment_info import Boundary, Segment, chain_mismatch


class RawBackend(Protocol):
    """Runs one signature of one model file on its own dtypes (no quantization), and reports its boundaries."""

    def run_raw(self, file: str, signature: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The signature's output for an input already in its dtype and layout."""
        ...

    def io_details(self, file: str, signature: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The interpreter's input and output details of the signature."""
        ...


def quantize(x: np.ndarray[Any, Any], b: Boundary) -> np.ndarray[Any, Any]:
    """Float values as the boundary's dtype (unchanged for a float boundary)."""
    if b.scale == 0 or not b.dtype.startswith(("int", "uint")):
        return x.astype(b.dtype)
    info = np.iinfo(b.dtype)
    return np.asarray(np.clip(np.round(x / b.scale + b.zero_point), info.min, info.max).astype(b.dtype))


def dequantize(q: np.ndarray[Any, Any], b: Boundary) -> np.ndarray[Any, Any]:
    """The boundary's values as float32."""
    if b.scale == 0 or not b.dtype.startswith(("int", "uint")):
        return q.astype(np.float32)
    return (q.astype(np.float32) - b.zero_point) * np.float32(b.scale)


@functools.lru_cache(maxsize=256)
def _table(src: Boundary, dst: Boundary) -> np.ndarray[Any, Any]:
    """Every int8 value of ``src`` requantized as ``dst``: the 256-entry lookup table of :func:`requantize`."""
    every = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    return quantize(dequantize(every, src), dst)


def requantize(q: np.ndarray[Any, Any], src: Boundary, dst: Boundary) -> np.ndarray[Any, Any]:
    """``q`` (quantized as ``src``) quantized as ``dst``; the same array when both agree. Between two int8
    boundaries a lookup table gives the same values as dequantizing and quantizing again."""
    if (src.dtype, src.scale, src.zero_point) == (dst.dtype, dst.scale, dst.zero_point):
        return q
    if src.dtype == dst.dtype == "int8" and src.scale and dst.scale:
        return np.asarray(_table(src, dst)[q.astype(np.int16) + 128])
    return quantize(dequantize(q, src), dst)


def check_chains(manifest: Manifest, where: str) -> None:
    """Every shipped chain names known segments whose neighbours agree on shape and dtype.

    Raises:
        BundleError: a chain names a missing segment, or two neighbours disagree; the message names them.
    """
    for v in manifest.shipped():
        if v.chain is None:
            continue
        if not v.chain:
            raise BundleError(f"{where}: variant {v.id} has an empty chain")
        try:
            chain = manifest.chain(v.id)
        except BundleError as exc:
            raise BundleError(f"{where}: {exc}") from None
        mismatch = chain_mismatch(chain)
        if mismatch:
            raise BundleError(f"{where}: variant {v.id}: {mismatch}")


def check_segment_file(backend: RawBackend, seg: Segment) -> None:
    """The segment's model file holds the boundaries the manifest records.

    Raises:
        BundleError: a shape, dtype, scale or zero point differs (the message names the segment).
    """
    din, dout = backend.io_details(seg.file, seg.signature)
    for side, detail, b in (("input", din, seg.input), ("output", dout, seg.output)):
        f = Boundary.from_detail(detail)
        found, recorded = (f.shape, f.dtype, f.scale, f.zero_point), (b.shape, b.dtype, b.scale, b.zero_point)
        if found[:2] != recorded[:2] or not np.isclose(found[2], recorded[2], rtol=1e-6) or found[3] != recorded[3]:
            raise BundleError(
                f"segment {seg.id}: its file's {side} is {found} (shape, dtype, scale, zero point), the manifest "
                f"records {recorded}"
            )


def run_chain(backend: RawBackend, chain: list[Segment], x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Float logits of ``chain`` for one float input ``x`` in the first segment's layout (batch 1)."""
    q = quantize(x, chain[0].input)
    previous: Boundary | None = None
    for seg in chain:
        if previous is not None:
            q = requantize(q, previous, seg.input)
        q = backend.run_raw(seg.file, seg.signature, q)
        previous = seg.output
    assert previous is not None
    return dequantize(q, previous)
