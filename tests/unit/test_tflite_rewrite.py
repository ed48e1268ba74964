"""Flatbuffer rewrites of segment files: compacting keeps every computed value, a variant's graph runs its chain in
one call with the values of the chain run segment by segment, constants stay 16-byte aligned, bytes are stable."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from restnet_compile.bundle.segment_info import Boundary
from restnet_compile.export.tflite_rewrite import (
    BUFFER_ALIGNMENT,
    _schema,
    compact,
    passes_unchanged,
    with_variant_graphs,
)
from restnet_compile.runtime.chain import requantize

S = _schema()
RNG = np.random.default_rng(0)
W = RNG.integers(-127, 128, (6, 4), dtype=np.int8)
BIAS = RNG.integers(-300, 300, 6, dtype=np.int32)


def _q(scale: float, zero: int):  # type: ignore[no-untyped-def]
    q = S.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zero]
    return q


def _tensor(name: str, shape: list[int], ttype: int, q, buffer: int = 0):  # type: ignore[no-untyped-def]
    t = S.TensorT()
    t.name, t.shape, t.type, t.buffer, t.quantization = name, shape, ttype, buffer, q
    return t


def _buffer(data: bytes):  # type: ignore[no-untyped-def]
    b = S.BufferT()
    b.data = np.frombuffer(data, np.uint8) if data else None
    return b


def _model() -> bytes:
    """Two segments: ``fc`` (int8 [1,4] -> FULLY_CONNECTED with int8 weights, int32 bias -> int8 [1,6]) and ``rq``
    (int8 [1,6] requantized by QUANTIZE), each a signature; the fc output's scale differs from rq's input scale."""
    m = S.ModelT()
    m.version, m.description = 3, "test"
    codes = []
    for code in (S.BuiltinOperator.FULLY_CONNECTED, S.BuiltinOperator.QUANTIZE):
        oc = S.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, code, 1
        codes.append(oc)
    m.operatorCodes = codes
    m.buffers = [_buffer(b""), _buffer(W.tobytes()), _buffer(BIAS.tobytes()), _buffer(b"1.2.3\0")]
    fc = S.SubGraphT()
    fc.tensors = [
        _tensor("input_tensor_with_a_long_name", [1, 4], S.TensorType.INT8, _q(0.05, -3)),
        _tensor("weights", [6, 4], S.TensorType.INT8, _q(0.01, 0), 1),
        _tensor("bias", [6], S.TensorType.INT32, _q(0.0005, 0), 2),
        _tensor("fc_out", [1, 6], S.TensorType.INT8, _q(0.04, 5)),
    ]
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT()
    fc.operators, fc.inputs, fc.outputs, fc.name = [op], [0], [3], "fc"
    rq = S.SubGraphT()
    rq.tensors = [
        _tensor("rq_in", [1, 6], S.TensorType.INT8, _q(0.03, 2)),
        _tensor("rq_out", [1, 6], S.TensorType.INT8, _q(0.02, -1)),
    ]
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 1, [0], [1]
    rq.operators, rq.inputs, rq.outputs, rq.name = [op], [0], [1], "rq"
    m.subgraphs = [fc, rq]
    sigs = []
    for k, key in enumerate(("fc", "rq")):
        sd = S.SignatureDefT()
        sd.signatureKey, sd.subgraphIndex = key, k
        i, o = S.TensorMapT(), S.TensorMapT()
        i.name, i.tensorIndex, o.name, o.tensorIndex = (
            "input",
            m.subgraphs[k].inputs[0],
            "output",
            m.subgraphs[k].outputs[0],
        )
        sd.inputs, sd.outputs = [i], [o]
        sigs.append(sd)
    m.signatureDefs = sigs
    md = S.MetadataT()
    md.name, md.buffer = "min_runtime_version", 3
    m.metadata = [md]
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _interpreter(model: bytes):  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model)


def _run(model: bytes, key: str, x: np.ndarray) -> np.ndarray:
    runner = _interpreter(model).get_signature_runner(key)
    ((name, _),) = runner.get_input_details().items()
    return next(iter(runner(**{name: x}).values()))


def _boundary(model: bytes, key: str, side: str) -> Boundary:
    runner = _interpreter(model).get_signature_runner(key)
    ((_, d),) = (runner.get_input_details() if side == "in" else runner.get_output_details()).items()
    scale, zero = d["quantization"]
    return Boundary(shape=tuple(d["shape"][1:]), dtype="int8", scale=float(scale), zero_point=int(zero))


X = RNG.integers(-128, 128, (1, 4), dtype=np.int8)


def _aligned(model: bytes) -> bool:
    m = S.Model.GetRootAsModel(model, 0)
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength() and b._tab.Vector(b._tab.Offset(4)) % BUFFER_ALIGNMENT:
            return False
    return True


def test_compact_drops_names_and_metadata_and_keeps_every_value() -> None:
    model = _model()
    small = compact(model)
    assert len(small) < len(model) and b"input_tensor_with_a_long_name" not in small and b"1.2.3" not in small
    for key in ("fc", "rq"):
        x = X if key == "fc" else X.repeat(2, axis=1)[:, :6]
        np.testing.assert_array_equal(_run(small, key, x), _run(model, key, x))
    assert _aligned(small) and compact(model) == small and compact(small) == small  # stable, and idempotent
    assert not _interpreter(compact(model, signatures=False)).get_signature_list()


def test_a_variant_graph_runs_its_chain_in_one_call_as_the_runtime_would() -> None:
    model = compact(_model())
    with_graph = with_variant_graphs(model, {"fc-rq": ["fc", "rq"], "fc-only": ["fc"]})
    assert _aligned(with_graph) and with_graph == with_variant_graphs(model, {"fc-rq": ["fc", "rq"], "fc-only": ["fc"]})
    assert set(_interpreter(with_graph).get_signature_list()) == {"fc", "rq", "fc-rq", "fc-only"}
    for x in RNG.integers(-128, 128, (50, 1, 4), dtype=np.int8):
        q = _run(model, "fc", x)  # the chain segment by segment, requantized between them by the runtime
        q = _run(model, "rq", requantize(q, _boundary(model, "fc", "out"), _boundary(model, "rq", "in")))
        np.testing.assert_array_equal(_run(with_graph, "fc-rq", x), q)
        np.testing.assert_array_equal(_run(with_graph, "fc-only", x), _run(model, "fc", x))
    assert len(with_graph) - len(model) < 1200  # two graphs, no weights
    with pytest.raises(KeyError, match="signature 'nope' not in model"):
        with_variant_graphs(model, {"v": ["fc", "nope"]})


def test_a_requantization_that_changes_nothing_adds_no_operator() -> None:
    assert passes_unchanged((0.030094318, -128), (0.030094321, -128), "int8")  # one tensor calibrated twice
    assert not passes_unchanged((0.04, 5), (0.03, 2), "int8")
    assert not passes_unchanged((0.03, 5), (0.03, 4), "int8")
    assert passes_unchanged((0.0, 0), (0.0, 0), "float32") and not passes_unchanged((0.5, 0), (0.6, 0), "float32")


def test_a_chain_shares_one_arena_on_tflite_micro_and_adds_up_on_litert() -> None:
    from restnet_compile.export.graph_cost import GraphCost, chain_cost

    a, b = GraphCost(1000, 400, 900, ("CONV_2D",), 600, 560), GraphCost(500, 300, 450, ("ADD",), 480, 470)
    micro, litert = chain_cost([a, b], 64), chain_cost([a, b], 64, one_arena=False)
    assert micro.model_bytes == litert.model_bytes == 1500 and micro.ops == ("ADD", "CONV_2D")
    assert micro.activation_bytes == 464 and litert.activation_bytes == 764  # each LiteRT subgraph keeps its arena
    assert micro.arena_estimate == 664 and micro.arena_measured == 624


def _table_positions(model: bytes) -> tuple[list[int], list[int]]:
    """The positions in the file of every subgraph's tensor and operator tables."""
    m = S.Model.GetRootAsModel(model, 0)
    tensors, operators = [], []
    for g in (m.Subgraphs(i) for i in range(m.SubgraphsLength())):
        tensors += [g.Tensors(j)._tab.Pos for j in range(g.TensorsLength())]
        operators += [g.Operators(j)._tab.Pos for j in range(g.OperatorsLength())]
    return tensors, operators


def test_a_variant_graph_points_at_its_segments_tensor_and_operator_tables() -> None:
    model = compact(_model())
    with_graph = with_variant_graphs(model, {"fc-only": ["fc"], "fc-rq": ["fc", "rq"]})
    tensors, operators = _table_positions(with_graph)
    # fc: 4 tensors, 1 operator; rq: 2 and 1. fc-only repeats fc's tables exactly; fc-rq repeats fc's four tensors
    # and its operator, and rq's two tensors, but its QUANTIZE between them is new and rq's operator reads
    # other tensor indices, so it is a table of its own.
    assert len(tensors) == 4 + 2 + 4 + 6 and len(set(tensors)) == 6
    assert len(operators) == 1 + 1 + 1 + 3 and len(set(operators)) == 2 + 2
    assert compact(with_graph) == with_graph
