"""The runtime's chains: requantization at boundaries, and refusals of chains the manifest cannot back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from restnet_compile.bundle.manifest import BundleError, Manifest, read_manifest, seal
from restnet_compile.bundle.segment_info import Boundary, Segment
from restnet_compile.runtime.chain import (
    check_chains,
    check_segment_file,
    dequantize,
    quantize,
    requantize,
    run_chain,
)
from tests.manifests import sample_manifest


def _b(shape: tuple[int, ...], scale: float = 0.5, zero: int = 0) -> Boundary:
    return Boundary(shape=shape, dtype="int8", scale=scale, zero_point=zero)


def _segment(sid: str, inp: Boundary, out: Boundary) -> Segment:
    return Segment(
        id=sid, model="large", start=0, stop=1, head=False, file=f"seg-{sid}.tflite", signature=sid,
        model_bytes=10, input=inp, output=out, arena_bytes=None, arena_bytes_measured=None,
    )  # fmt: skip


def _manifest(segments: tuple[Segment, ...], chain: tuple[str, ...]) -> Manifest:
    m = sample_manifest()
    shipped = dataclasses.replace(m.shipped()[0], file=None, signature=None, chain=chain)
    return dataclasses.replace(m, format_version=3, variants=(shipped,), segments=segments, manifest_sha256=None)


def test_a_chained_manifest_round_trips() -> None:
    m = _manifest((_segment("A", _b((4, 4, 2)), _b((3,))),), ("A",))
    back = read_manifest(seal(m))
    assert back.segments == m.segments and back.shipped()[0].chain == ("A",)
    assert [s.id for s in back.chain(back.shipped()[0].id)] == ["A"]


def test_requantize_maps_values_between_scales() -> None:
    src, dst = _b((2,), 0.5, 0), _b((2,), 0.25, 10)
    q = np.array([[-4, 6]], dtype=np.int8)
    np.testing.assert_array_equal(requantize(q, src, dst), [[2, 22]])
    assert requantize(q, src, src) is q  # same scale and zero point: passed as it is
    np.testing.assert_array_equal(dequantize(requantize(q, src, dst), dst), dequantize(q, src))
    every = np.arange(-128, 128).astype(np.int8)[None]
    for a, b in ((src, dst), (_b((2,), 0.0123, -7), _b((2,), 0.031, 40))):  # the table is the direct formula
        np.testing.assert_array_equal(requantize(every, a, b), quantize(dequantize(every, a), b))


def test_a_chain_naming_a_missing_segment_is_refused() -> None:
    m = _manifest((_segment("A", _b((4,)), _b((3,))),), ("A", "B"))
    with pytest.raises(BundleError, match=r"unknown segment 'B'; valid choices: A"):
        check_chains(m, "bundle")


def test_neighbours_that_disagree_on_shape_are_refused() -> None:
    m = _manifest((_segment("A", _b((4,)), _b((3,))), _segment("B", _b((5,)), _b((2,)))), ("A", "B"))
    with pytest.raises(BundleError, match=r"segment A gives \[3\] int8 but segment B takes \[5\] int8"):
        check_chains(m, "bundle")


class _Fake:
    """Each segment adds 1 to its int8 input; the file's details are as given."""

    def __init__(self, details: dict[str, tuple[dict, dict]]) -> None:
        self.details = details
        self.calls: list[str] = []

    def run_raw(self, file: str, signature: str, x: np.ndarray) -> np.ndarray:
        self.calls.append(signature)
        return (x.astype(np.int16) + 1).astype(np.int8)

    def io_details(self, file: str, signature: str) -> tuple[dict, dict]:
        return self.details[signature]


def _detail(b: Boundary) -> dict:
    return {"shape": np.array([1, *b.shape]), "dtype": np.dtype(b.dtype), "quantization": (b.scale, b.zero_point)}


def test_run_chain_passes_each_output_on_requantized() -> None:
    a = _segment("A", _b((2,), 1.0, 0), _b((2,), 1.0, 0))
    b = _segment("B", _b((2,), 0.5, 0), _b((2,), 0.5, 0))
    fake = _Fake({})
    out = run_chain(fake, [a, b], np.array([[1.0, 2.0]], dtype=np.float32))
    # A: 1,2 -> 2,3 (scale 1); to scale 0.5: 4,6; B: 5,7 -> 2.5, 3.5
    np.testing.assert_allclose(out, [[2.5, 3.5]])
    assert fake.calls == ["A", "B"]


def test_a_segment_file_with_other_scales_than_the_manifest_is_refused() -> None:
    seg = _segment("A", _b((2,), 0.5), _b((2,), 0.5))
    fake = _Fake({"A": (_detail(seg.input), _detail(_b((2,), 0.25)))})
    with pytest.raises(BundleError, match="segment A: its file's output"):
        check_segment_file(fake, seg)
    check_segment_file(_Fake({"A": (_detail(seg.input), _detail(seg.output))}), seg)
