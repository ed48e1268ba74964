"""Read an exported ``.tflite`` graph: per-signature ops, tensor liveness, peak activation memory, variant bytes.

The flatbuffer is parsed with the TFLite schema that ships in the pinned ``tflite-micro`` wheel (the same generated
code as ``tensorflow.lite.python.schema_py_generated``, without importing TensorFlow). Nothing here runs a model.

Peak activation memory follows the interpreters' arena planners: every non-constant tensor of a signature's subgraph
is live from the op that writes it (or from the start, for inputs) to the last op that reads it (or to the end, for
outputs); while an op runs its inputs and outputs are all live. The peak is the largest sum of live tensor bytes,
each rounded up to the planner's alignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ALIGNMENT = 16  # TFLM's MicroArena and LiteRT's arena align every buffer to 16 bytes

# TensorType enum -> bytes per element (schema.fbs order).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 4, 15: 4, 16: 2}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    constant: bool


@dataclass(frozen=True)
class OpInfo:
    """One operator in execution order."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass
class SubgraphInfo:
    """The graph of one signature.

    Attributes:
        signature: Signature key (the variant id).
        index: Subgraph index in the model.
        tensors: Every tensor, by index.
        ops: Operators in execution order.
        inputs: Subgraph input tensor indices.
        outputs: Subgraph output tensor indices.
        constant_bytes: Bytes of the constant buffers this subgraph reads (weights, biases, quant tables).
    """

    signature: str
    index: int
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    constant_bytes: int = 0
    op_names: list[str] = field(default_factory=list)

    def activation_tensors(self) -> list[TensorInfo]:
        """Tensors that need arena memory (not constants)."""
        used = {t for op in self.ops for t in (*op.inputs, *op.outputs)} | set(self.inputs) | set(self.outputs)
        return [t for t in self.tensors if t.index in used and not t.constant]


def opcode_name(schema, code) -> str:
    """``CONV_2D``-style name of a flatbuffer operator code (``CUSTOM:<name>`` for custom operators)."""
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode}"
    return names.get(builtin, f"BUILTIN_{builtin}")


def _load(model: bytes | Path):
    schema = _schema()
    data = model.read_bytes() if isinstance(model, Path) else model
    return schema, schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))


def _buffer_bytes(buf) -> int:
    if buf is None:
        return 0
    if buf.data is not None and len(buf.data):
        return len(buf.data)
    return int(buf.size or 0)


def _subgraph(schema, m, index: int, signature: str) -> SubgraphInfo:
    sg = m.subgraphs[index]
    tensors = []
    const_buffers: set[int] = set()
    for i, t in enumerate(sg.tensors or []):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        nbytes = int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES.get(t.type, 4)
        constant = t.buffer > 0 and _buffer_bytes(m.buffers[t.buffer]) > 0
        if constant:
            const_buffers.add(t.buffer)
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
        tensors.append(TensorInfo(i, name, shape, _TYPE_NAMES.get(t.type, f"type{t.type}"), nbytes, constant))
    ops = []
    for op in sg.operators or []:
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else []) if x >= 0)
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else []) if x >= 0)
        ops.append(OpInfo(opcode_name(schema, m.operatorCodes[op.opcodeIndex]), ins, outs))
    info = SubgraphInfo(
        signature=signature,
        index=index,
        tensors=tensors,
        ops=ops,
        inputs=tuple(int(x) for x in sg.inputs),
        outputs=tuple(int(x) for x in sg.outputs),
        constant_bytes=sum(_buffer_bytes(m.buffers[b]) for b in const_buffers),
    )
    info.op_names = sorted({o.name for o in ops})
    return info


def _key(sig) -> str:
    return sig.signatureKey.decode() if isinstance(sig.signatureKey, bytes) else str(sig.signatureKey)


def read_graphs(model: bytes | Path) -> dict[str, SubgraphInfo]:
    """Every signature's subgraph of a ``.tflite`` file or buffer, by signature key (``main`` when there is none)."""
    schema, m = _load(model)
    sigs = m.signatureDefs or []
    if not sigs:
        return {"main": _subgraph(schema, m, 0, "main")}
    return {_key(s): _subgraph(schema, m, s.subgraphIndex, _key(s)) for s in sigs}


def _aligned(n: int, alignment: int = ALIGNMENT) -> int:
    return -(-n // alignment) * alignment


def liveness(sg: SubgraphInfo) -> dict[int, tuple[int, int]]:
    """First and last op index during which each activation tensor must hold its value."""
    last = len(sg.ops) - 1
    span: dict[int, list[int]] = {t.index: [0, 0] for t in sg.activation_tensors()}
    for t in sg.inputs:
        if t in span:
            span[t] = [0, 0]
    first_write: dict[int, int] = {}
    for i, op in enumerate(sg.ops):
        for t in op.outputs:
            if t in span and t not in first_write:
                first_write[t] = i
                span[t] = [i, i]
        for t in op.inputs:
            if t in span:
                span[t][1] = max(span[t][1], i)
    for t in sg.outputs:
        if t in span:
            span[t][1] = last
    return {t: (a, b) for t, (a, b) in span.items()}


def peak_activation_bytes(sg: SubgraphInfo, alignment: int = ALIGNMENT) -> int:
    """Largest sum of live (aligned) activation bytes over the execution order."""
    sizes = {t.index: _aligned(t.nbytes, alignment) for t in sg.activation_tensors()}
    spans = liveness(sg)
    peak = 0
    for i in range(max(len(sg.ops), 1)):
        peak = max(peak, sum(sizes[t] for t, (a, b) in spans.items() if a <= i <= b))
    return peak


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def extract_signature(model: bytes | Path, signature: str) -> bytes:
    """A single-subgraph ``.tflite`` holding only ``signature``'s graph and the buffers it reads, compacted as the
    exporters write files (``tflite_rewrite.compact``).

    TFLite Micro runs the first subgraph of a model and cannot load the multi-signature bundle, so MCU checks and
    per-variant flash use this file. Ops, tensors, quantization and constant bytes are those of the bundle.
    """
    schema, m = _load(model)
    sigs = {_key(s): s for s in (m.signatureDefs or [])}
    if signature not in sigs:
        raise KeyError(f"signature {signature!r} not in model; has {', '.join(sorted(sigs))}")
    sig = sigs[signature]
    sg = m.subgraphs[sig.subgraphIndex]
    remap = {0: 0}
    buffers = [schema.BufferT()]
    for t in sg.tensors or []:
        if t.buffer not in remap:
            remap[t.buffer] = len(buffers)
            buffers.append(m.buffers[t.buffer])
        t.buffer = remap[t.buffer]
    for md in m.metadata or []:
        if md.buffer not in remap:
            remap[md.buffer] = len(buffers)
            buffers.append(m.buffers[md.buffer])
        md.buffer = remap[md.buffer]
    sig.subgraphIndex = 0
    m.subgraphs, m.signatureDefs, m.buffers = [sg], [sig], buffers
    import flatbuffers

    from restnet_compile.export.tflite_rewrite import compact

    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return compact(bytes(builder.Output()))  # packed as the exporters pack every file


def signature_file_name(signature: str) -> str:
    """A safe file name for a signature's single-subgraph model."""
    return _SAFE.sub("_", signature) + ".tflite"


# TFLite Micro's bookkeeping in the arena's tail, by what its RecordingMicroAllocator reports (tflite-micro wheel,
# 64-bit host build): 24 B TfLiteEvalTensor per tensor, 64 B NodeAndRegistration per op, 64 B TfLiteTensor + 32 B
# quantization data per model input/output, and per op "persistent buffer data" (OpData; per-channel multipliers and
# shifts, 8 B per output channel of a quantized convolution). The constants round those up; ``fixed`` covers the
# allocator, graph and subgraph structs (measured 664-824 B on the demo variants).
# Most of these structs are pointers, so a 32-bit core (Cortex-M) needs about half: sizeof as arm-none-eabi-g++ 12.2
# lays them out against the same TFLM tree (64-bit host in brackets) is TfLiteEvalTensor 12 (24), NodeAndRegistration
# 32 (64), TfLiteTensor 32 (64), TfLiteAffineQuantization 12 (24), OpDataConv 56 (72), OpDataFullyConnected 48 (64),
# MicroAllocator 36 (72), MicroInterpreterGraph 36 (64), SingleArenaBufferAllocator 36 (72), GreedyMemoryPlanner
# 44 (72). OpData is a 16-byte aligned persistent buffer (OpDataConv: 64, 80 on the host); the per-channel arrays are
# int32 on both.
_PER_CHANNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}


@dataclass(frozen=True)
class TflmBookkeeping:
    """Bytes of TFLite Micro's persistent structs in the arena's tail, for one pointer width."""

    per_tensor: int
    per_op: int
    per_io: int
    per_channel: int
    fixed: int


BOOKKEEPING = {
    8: TflmBookkeeping(per_tensor=24, per_op=64 + 96, per_io=96, per_channel=8, fixed=1024),
    4: TflmBookkeeping(per_tensor=12, per_op=32 + 80, per_io=48, per_channel=8, fixed=512),
}
HOST_POINTER_BYTES = 8  # the TFLM interpreter a build runs (tflite-micro wheel, x86-64 / arm64)


@dataclass(frozen=True)
class ArenaEstimate:
    """Estimated TFLite Micro tensor arena of one subgraph.

    Attributes:
        head: Activation tensors at the liveness peak (the planner's non-persistent area).
        tail: Persistent bookkeeping: tensor and node structs, per-op data.
    """

    head: int
    tail: int

    @property
    def total(self) -> int:
        """Bytes the arena needs."""
        return self.head + self.tail


def arena_estimate(sg: SubgraphInfo, pointer_bytes: int = HOST_POINTER_BYTES) -> ArenaEstimate:
    """The TFLite Micro arena ``sg`` needs: liveness peak + persistent bookkeeping, laid out for a core whose
    pointers are ``pointer_bytes`` wide (8: the 64-bit TFLM interpreter a build measures with; 4: Cortex-M)."""
    if pointer_bytes not in BOOKKEEPING:
        raise ValueError(f"pointer_bytes must be one of {sorted(BOOKKEEPING)}, not {pointer_bytes}")
    k = BOOKKEEPING[pointer_bytes]
    channels = sum(sg.tensors[op.outputs[0]].shape[-1] for op in sg.ops if op.name in _PER_CHANNEL_OPS and op.outputs)
    tail = (
        k.per_tensor * len(sg.tensors)
        + k.per_op * len(sg.ops)
        + k.per_io * (len(sg.inputs) + len(sg.outputs))
        + k.per_channel * channels
        + k.fixed
    )
    return ArenaEstimate(peak_activation_bytes(sg), _aligned(tail))
