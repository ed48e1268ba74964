"""Rewrite a converted ``.tflite`` flatbuffer: store what it repeats once, drop what no interpreter reads, and add
one graph per chained variant.

Both rewrites unpack the model with the TFLite schema (the ``tflite-micro`` wheel's generated code, as
``graph_memory`` reads it), change its tables and pack it again. Constant buffers keep their bytes and are packed at
16-byte offsets, as the converter aligns them (``force_align: 16`` in the schema): int32 biases and float weights are
read in place by the kernels. Packing is deterministic, so the same input gives the same bytes.

``compact`` (every TFLite file the exporters write):
- stores each quantization table, and each of its vectors, once per content. Every per-channel weight carries an
  int64 zero point per channel, all zeros, and a signature per variant repeats the tables of the blocks it shares;
  flatbuffers let many tensors point at one table. On the demo's seven segments this is 12.7 KB of 360 KB;
- points every tensor without constant data at the schema's empty buffer 0 (the converter gives each its own), and
  constants with the same bytes at one buffer; stores equal strings once;
- stores each tensor table and each operator table once per content: a variant's graph repeats its segments'
  tensors and most of their operators, and in a file of one signature per whole variant a stitch repeats the
  tensors of the prefix it shares with its anchor;
- removes tensor names, the model's description and its metadata (the converter's ``min_runtime_version`` and
  conversion options; the manifest records the tool versions), and when asked (TFLite Micro never reads them) the
  signature tables.
LiteRT and the TFLite Micro interpreter give the same outputs, bit for bit, on the compacted files.

``with_variant_graphs`` appends to a file of segment signatures one subgraph per chained variant holding its
segments' operators in chain order, with a ``QUANTIZE`` operator between two int8 segments whose quantizations
differ. Its tensors read the segments' constant buffers, and their quantization tables are the segments' (stored
once), so the variant runs as one graph, as fast as a whole-variant graph, while each block's constants are stored
once: the graph costs its tensor and operator vectors, and the tables of operators that read other tensor indices
than in their segment. Two boundary tensors are one only when their quantizations are
equal: XNNPACK refuses a ``PAD`` or a pooling whose input and output scales differ in the last bit, so a boundary
that the same tensor calibrated twice left a float rounding apart gets a ``QUANTIZE`` too; it maps every value to
itself, as the runtime's chain runner passes such a tensor on unchanged (``passes_unchanged``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

BUFFER_ALIGNMENT = 16
_QUANT_VECTORS = (("min", "<f4"), ("max", "<f4"), ("scale", "<f4"), ("zeroPoint", "<i8"))


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _unpack(model: bytes):
    schema = _schema()
    return schema, schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))


def _pack(schema, m) -> bytes:
    """``m`` as flatbuffer bytes: each non-empty constant buffer 16-byte aligned; quantization tables, operator
    options, numeric vectors and strings of equal content stored once."""
    import flatbuffers

    class _Aligned(schema.BufferT):
        def Pack(self, builder):  # noqa: N802 (the generated code's name)
            data = None
            if self.data is not None and len(self.data):
                raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector(len(raw))
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            if self.offset:
                schema.BufferAddOffset(builder, self.offset)
                schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    class _Shared(schema.QuantizationParametersT):
        """Quantization tables and their vectors stored once per content: per-channel zero points are zeros of a
        few lengths, and a graph's boundary tensors repeat their segments' tables."""

        def Pack(self, builder):  # noqa: N802 (the generated code's name)
            fields = [(name, getattr(self, name), dtype) for name, dtype in _QUANT_VECTORS]
            key = (
                *((n, None if v is None else np.asarray(v, d).tobytes()) for n, v, d in fields),
                self.quantizedDimension,
            )
            tables = builder.__dict__.setdefault("tables", {})
            if self.details is None and key in tables:
                return tables[key]
            made = {}
            for name, value, dtype in fields:
                if value is not None:
                    arr = np.asarray(value, dtype)
                    made[name] = builder.CreateNumpyVector(arr)  # stored once per content by the builder
            details = self.details.Pack(builder) if self.details is not None else None
            schema.QuantizationParametersStart(builder)
            for name, add in (("min", "Min"), ("max", "Max"), ("scale", "Scale"), ("zeroPoint", "ZeroPoint")):
                if name in made:
                    getattr(schema, f"QuantizationParametersAdd{add}")(builder, made[name])
            schema.QuantizationParametersAddDetailsType(builder, self.detailsType)
            if details is not None:
                schema.QuantizationParametersAddDetails(builder, details)
            schema.QuantizationParametersAddQuantizedDimension(builder, self.quantizedDimension)
            offset = schema.QuantizationParametersEnd(builder)
            if self.details is None:
                tables[key] = offset
            return offset

    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            if t.quantization is not None:
                shared = _Shared()
                shared.__dict__.update(t.quantization.__dict__)
                t.quantization = shared
    buffers = []
    for b in m.buffers or []:
        aligned = _Aligned()
        aligned.data, aligned.offset, aligned.size = b.data, b.offset, b.size
        buffers.append(aligned)
    m.buffers = buffers

    class _Once(flatbuffers.Builder):
        """One copy of each string (the ``input`` / ``logits`` names of every signature) and of each numeric vector
        (tensor shapes, operator inputs)."""

        def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802
            key = s if isinstance(s, bytes) else s.encode(encoding, errors)
            strings = self.__dict__.setdefault("strings", {})
            if key not in strings:
                strings[key] = super().CreateString(s, encoding, errors)
            return strings[key]

        def CreateNumpyVector(self, x):  # noqa: N802
            key = (x.dtype.str, x.tobytes())
            vectors = self.__dict__.setdefault("vectors", {})
            if key not in vectors:
                vectors[key] = super().CreateNumpyVector(x)
            return vectors[key]

    class _TableOnce:
        """A table stored once per content: an operator's options (every copy of a 3x3 convolution's, say), a
        tensor or an operator. A variant's graph repeats its segments' tensors and the first segment's operators,
        and a signature per whole variant repeats the tensors of the blocks it shares with the others; a table may
        be pointed at from any number of vectors."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def Pack(self, builder):  # noqa: N802
            key = _content(self.inner)
            tables = builder.__dict__.setdefault("tables_once", {})
            if key not in tables:
                tables[key] = self.inner.Pack(builder)
            return tables[key]

    for sg in m.subgraphs or []:
        for op in sg.operators or []:
            for field in ("inputs", "outputs", "intermediates"):
                if getattr(op, field) is not None:
                    setattr(op, field, np.asarray(getattr(op, field), dtype=np.int32))
            if op.builtinOptions is not None and not isinstance(op.builtinOptions, _TableOnce):
                op.builtinOptions = _TableOnce(op.builtinOptions)
        for t in sg.tensors or []:
            if t.shape is not None:
                t.shape = np.asarray(t.shape, dtype=np.int32)
            if t.shapeSignature is not None:
                t.shapeSignature = np.asarray(t.shapeSignature, dtype=np.int32)
        sg.tensors = [_TableOnce(t) for t in sg.tensors or []]
        sg.operators = [_TableOnce(op) for op in sg.operators or []]
        for field in ("inputs", "outputs"):
            if getattr(sg, field) is not None:
                setattr(sg, field, np.asarray(getattr(sg, field), dtype=np.int32))

    builder = _Once(1 << 16)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _content(value: object) -> object:
    """A hashable, exact stand-in for a table's content: arrays by dtype, shape and bytes, nested tables by their
    class and fields (a table wrapped to be stored once by what it wraps), so two keys are equal only when the
    packed tables would be."""
    if isinstance(value, np.ndarray | np.generic):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, list | tuple):
        return tuple(_content(v) for v in value)
    if isinstance(value, float):
        return ("float", value.hex())  # -0.0 is not 0.0 here
    if value is None or isinstance(value, bool | int | str | bytes):
        return (type(value).__name__, value)
    inner = getattr(value, "inner", value)
    schema_class = type(inner).__mro__[-2]  # the generated class, under the subclasses that pack it differently
    return (schema_class.__name__, tuple((k, _content(v)) for k, v in sorted(vars(inner).items())))


def _key(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def compact(model: bytes, *, signatures: bool = True) -> bytes:
    """``model`` without tensor names, description and metadata; without signature tables when ``signatures`` is
    false (TFLite Micro never reads them). Operators, tensors, quantization and constants are unchanged."""
    schema, m = _unpack(model)
    for sg in m.subgraphs or []:
        sg.name = None
        for t in sg.tensors or []:
            t.name = None
    m.description, m.metadata, m.metadataBuffer = None, None, None
    if not signatures:
        m.signatureDefs = None
    _share_buffers(schema, m)
    return _pack(schema, m)


def _share_buffers(schema, m) -> None:
    """Every tensor without constant data reads buffer 0 (the schema's empty buffer; the converter gives each tensor
    one of its own), and constants with the same bytes read one buffer. Unread buffers go."""
    buffers = [schema.BufferT()]
    first: dict[bytes | tuple[str, int], int] = {}  # constant bytes (or a buffer stored outside) -> its new index
    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            b = m.buffers[t.buffer]
            if b.offset or b.size:  # stored outside the flatbuffer: kept as it is
                first[("outside", t.buffer)] = first.get(("outside", t.buffer), len(buffers))
                if first[("outside", t.buffer)] == len(buffers):
                    buffers.append(b)
                t.buffer = first[("outside", t.buffer)]
                continue
            data = b"" if b.data is None else np.asarray(b.data, dtype=np.uint8).tobytes()
            if not data:
                t.buffer = 0
                continue
            if data not in first:
                first[data] = len(buffers)
                buffers.append(b)
            t.buffer = first[data]
    m.buffers = buffers


def _quantization(t) -> tuple[float, int]:
    q = t.quantization
    if q is None or q.scale is None or not len(q.scale):
        return 0.0, 0
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0


def passes_unchanged(src: tuple[float, int], dst: tuple[float, int], dtype: str) -> bool:
    """Whether requantizing every ``dtype`` value from ``src`` (scale, zero point) to ``dst`` gives it back."""
    if src == dst:
        return True
    if dtype != "int8" or not (src[0] and dst[0]) or src[1] != dst[1]:
        return False
    q = np.arange(-128, 128, dtype=np.float64)
    back = np.clip(np.round((q - src[1]) * src[0] / dst[0] + dst[1]), -128, 127)
    return bool(np.array_equal(back, q))


_TYPE_NAMES = {0: "float32", 9: "int8", 3: "uint8", 7: "int16"}


def with_variant_graphs(model: bytes, chains: Mapping[str, Sequence[str]]) -> bytes:
    """``model`` (one signature per segment) with a signature per variant of ``chains`` (variant id -> the segment
    signatures it runs, in order): a subgraph holding its segments' operators one after the other, whose tensors read
    the segments' constant buffers and quantization tables (stored once), with a ``QUANTIZE`` operator where one
    segment's output and the next one's input are quantized differently.

    Raises:
        KeyError: a chain names a signature the model lacks.
    """
    schema, m = _unpack(model)
    sigs = {_key(s.signatureKey): s for s in m.signatureDefs or []}
    missing = sorted({key for chain in chains.values() for key in chain} - set(sigs))
    if missing:
        raise KeyError(f"signature {missing[0]!r} not in model; has {', '.join(sorted(sigs))}")
    quantize_code = _op_code(schema, m, schema.BuiltinOperator.QUANTIZE)
    for vid, chain in chains.items():
        sg = schema.SubGraphT()
        sg.tensors, sg.operators = [], []
        current: int | None = None
        for key in chain:
            seg = m.subgraphs[sigs[key].subgraphIndex]
            remap = {-1: -1}  # the segment's tensor index -> the variant graph's (-1: an omitted optional input)
            for i, t in enumerate(seg.tensors):
                if i == seg.inputs[0] and current is not None:
                    prev = sg.tensors[current]
                    if _quantization(prev) == _quantization(t):
                        remap[i] = current
                        continue
                    sg.tensors.append(copy.copy(t))
                    remap[i] = len(sg.tensors) - 1
                    sg.operators.append(_operator(schema, quantize_code, [current], [remap[i]]))
                    continue
                sg.tensors.append(copy.copy(t))
                remap[i] = len(sg.tensors) - 1
            if current is None:
                sg.inputs = [remap[seg.inputs[0]]]
            for op in seg.operators or []:
                inlined = copy.copy(op)
                inlined.inputs = [remap[int(j)] for j in op.inputs]
                inlined.outputs = [remap[int(j)] for j in op.outputs]
                if op.intermediates is not None:
                    inlined.intermediates = [remap[int(j)] for j in op.intermediates]
                sg.operators.append(inlined)
            current = remap[seg.outputs[0]]
        assert current is not None
        sg.outputs = [current]
        m.subgraphs.append(sg)
        sd = schema.SignatureDefT()
        sd.signatureKey, sd.subgraphIndex = vid, len(m.subgraphs) - 1
        first, last = sigs[chain[0]], sigs[chain[-1]]
        sd.inputs = [_tensor_map(schema, first.inputs[0].name, sg.inputs[0])]
        sd.outputs = [_tensor_map(schema, last.outputs[0].name, current)]
        m.signatureDefs.append(sd)
    return _pack(schema, m)


def _op_code(schema, m, code: int) -> int:
    """The index of builtin ``code`` in the model's operator codes, added when missing."""
    for i, oc in enumerate(m.operatorCodes or []):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
    m.operatorCodes = [*(m.operatorCodes or []), oc]
    return len(m.operatorCodes) - 1


def _operator(schema, code: int, inputs: list[int], outputs: list[int]):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
    return op


def _tensor_map(schema, name, index: int):
    tm = schema.TensorMapT()
    tm.name, tm.tensorIndex = _key(name), index
    return tm
