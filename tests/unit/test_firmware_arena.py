"""The TFLite Micro arena estimate per pointer width, and the per-CPU arena header a firmware project carries."""

from __future__ import annotations

import pytest

from restnet_compile.export.graph_memory import BOOKKEEPING, OpInfo, SubgraphInfo, TensorInfo, arena_estimate
from restnet_compile.firmware.arena import render_arena_header
from restnet_compile.firmware.cpus import CPUS


def _conv_graph() -> SubgraphInfo:
    """input (1,8,8,1) -> CONV_2D (4 channels, weights and bias constant) -> output (1,8,8,4)."""
    tensors = [
        TensorInfo(0, "x", (1, 8, 8, 1), "int8", 64, False),
        TensorInfo(1, "w", (4, 3, 3, 1), "int8", 36, True),
        TensorInfo(2, "b", (4,), "int32", 16, True),
        TensorInfo(3, "y", (1, 8, 8, 4), "int8", 256, False),
    ]
    return SubgraphInfo("s", 0, tensors, [OpInfo("CONV_2D", (0, 1, 2), (3,))], (0,), (3,), 52, ["CONV_2D"])


def test_a_32_bit_core_needs_the_same_activations_and_less_bookkeeping() -> None:
    sg = _conv_graph()
    host, m4 = arena_estimate(sg), arena_estimate(sg, pointer_bytes=4)
    assert host == arena_estimate(sg, pointer_bytes=8)
    assert m4.head == host.head == 64 + 256  # input and output both live across the one convolution
    k8, k4 = BOOKKEEPING[8], BOOKKEEPING[4]
    tail = 4 * k8.per_tensor + k8.per_op + 2 * k8.per_io + 4 * k8.per_channel + k8.fixed
    assert host.tail == -(-tail // 16) * 16
    assert m4.tail == -(-(4 * k4.per_tensor + k4.per_op + 2 * k4.per_io + 4 * k4.per_channel + k4.fixed) // 16) * 16
    assert m4.tail < host.tail and m4.total % 16 == 0
    with pytest.raises(ValueError, match="pointer_bytes must be one of"):
        arena_estimate(sg, pointer_bytes=2)


def test_cortex_m_cores_have_4_byte_pointers() -> None:
    assert {CPUS[n].pointer_bytes for n in ("cortex-m4", "cortex-m7", "cortex-m55")} == {4}
    assert CPUS["host"].pointer_bytes in (4, 8)


def test_the_arena_header_sizes_the_arena_with_the_largest_variant() -> None:
    header = render_arena_header(CPUS["cortex-m4"], {"small": 9088, "L1-S1": 51328})
    assert "#define RESTNET_CPU_ARENA_BYTES 51328u" in header
    assert '{"small", 9088u},' in header and '{"L1-S1", 51328u},' in header
    assert "4-byte pointers" in header and "cortex-m4" in header
