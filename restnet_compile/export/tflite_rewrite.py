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
- removes tensor names, the model's description and its metadata (the converter's ``min_runtime_version`` and
  conversion options; the manifest records the tool versions), and when asked (TFLite Micro never reads them) the
  signature tables.
LiteRT and the TFLite Micro interpreter give the same outputs, bit for bit, on the compacted files.

``with_variant_graphs`` appends to a file of segment signatures one subgraph per chained variant that calls its
segments' subgraphs in order with ``IF`` operators on a constant true condition (the control-flow kernel copies the
inputs into the called subgraph, runs it and copies its output back), with a ``QUANTIZE`` operator between two int8
segments whose quantizations differ. The variant then runs as one interpreter call, as a whole-variant graph would,
and still stores each block once: its subgraph holds a few tensors and operators, no weights. Between two boundaries
whose requantization maps every int8 value to itself (the same tensor calibrated twice, scales a float rounding
apart) no operator is added, as the runtime's chain runner passes such a tensor on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BUFFER_ALIGNMENT = 16
_QUANT_VECTORS = (("min", "<f4"), ("max", "<f4"), ("scale", "<f4"), ("zeroPoint", "<i8"))


def _schema():  # type: ignore[no-untyped-def]
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _unpack(model: bytes):  # type: ignore[no-untyped-def]
    schema = _schema()
    return schema, schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))


def _pack(schema, m) -> bytes:  # type: ignore[no-untyped-def]
    """``m`` as flatbuffer bytes, each non-empty constant buffer 16-byte aligned."""
    import flatbuffers

    class _Aligned(schema.BufferT):  # type: ignore[misc, name-defined]
        def Pack(self, builder):  # type: ignore[no-untyped-def] # noqa: N802 (the generated code's name)
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

    class _Shared(schema.QuantizationParametersT):  # type: ignore[misc, name-defined]
        """Quantization tables and their vectors stored once per content: per-channel zero points are zeros of a
        few lengths, and a graph's boundary tensors repeat their segments' tables."""

        def Pack(self, builder):  # type: ignore[no-untyped-def] # noqa: N802 (the generated code's name)
            fields = [(name, getattr(self, name), dtype) for name, dtype in _QUANT_VECTORS]
            key = (
                *((n, None if v is None else np.asarray(v, d).tobytes()) for n, v, d in fields),
                self.quantizedDimension,
            )
            tables = builder.__dict__.setdefault("tables", {})
            if self.details is None and key in tables:
                return tables[key]
            vectors = builder.__dict__.setdefault("vectors", {})
            made = {}
            for name, value, dtype in fields:
                if value is not None:
                    arr = np.asarray(value, dtype)
                    vkey = (dtype, arr.tobytes())
                    if vkey not in vectors:
                        vectors[vkey] = builder.CreateNumpyVector(arr)
                    made[name] = vectors[vkey]
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

    class _SharedStrings(flatbuffers.Builder):  # type: ignore[misc]
        """One copy of each string: the ``input`` / ``logits`` names of every signature, say."""

        def CreateString(self, s, encoding="utf-8", errors="strict"):  # type: ignore[no-untyped-def] # noqa: N802
            key = s if isinstance(s, bytes) else s.encode(encoding, errors)
            strings = self.__dict__.setdefault("strings", {})
            if key not in strings:
                strings[key] = super().CreateString(s, encoding, errors)
            return strings[key]

    builder = _SharedStrings(1 << 16)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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


def _share_buffers(schema, m) -> None:  # type: ignore[no-untyped-def]
    """Every tensor without constant data reads buffer 0 (the schema's empty buffer; the converter gives each tensor
    one of its own), and constants with the same bytes read one buffer. Unread buffers go."""
    buffers, first = [schema.BufferT()], {}
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


def _quantization(t) -> tuple[float, int]:  # type: ignore[no-untyped-def]
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
    signatures it runs, in order) whose subgraph calls them one after the other.

    Raises:
        KeyError: a chain names a signature the model lacks.
    """
    schema, m = _unpack(model)
    sigs = {_key(s.signatureKey): s for s in m.signatureDefs or []}

    def op_code(code: int) -> int:
        for i, oc in enumerate(m.operatorCodes or []):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return i
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        m.operatorCodes = [*(m.operatorCodes or []), oc]
        return len(m.operatorCodes) - 1

    if_code, quantize_code = op_code(schema.BuiltinOperator.IF), op_code(schema.BuiltinOperator.QUANTIZE)
    true = schema.BufferT()
    true.data = np.ones(1, np.uint8)
    m.buffers.append(true)
    true_buffer = len(m.buffers) - 1

    def io(key: str):  # type: ignore[no-untyped-def]
        if key not in sigs:
            raise KeyError(f"signature {key!r} not in model; has {', '.join(sorted(sigs))}")
        sg = m.subgraphs[sigs[key].subgraphIndex]
        return sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]

    for vid, chain in chains.items():
        sg = schema.SubGraphT()
        sg.tensors, sg.operators = [], []

        def tensor(like, quantized: bool, shaped: bool = False, _sg=sg) -> int:  # type: ignore[no-untyped-def]
            t = schema.TensorT()  # an inner tensor takes its shape from the IF that writes it
            t.shape, t.type, t.buffer = list(like.shape) if shaped else None, like.type, 0
            t.quantization = like.quantization if quantized else None
            _sg.tensors.append(t)
            return len(_sg.tensors) - 1

        def operator(code: int, inputs: list[int], outputs: list[int], _sg=sg):  # type: ignore[no-untyped-def]
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
            _sg.operators.append(op)
            return op

        condition = schema.TensorT()
        condition.shape, condition.type, condition.buffer = [], schema.TensorType.BOOL, true_buffer
        sg.tensors.append(condition)
        first_in, _ = io(chain[0])
        current, current_q = tensor(first_in, True, True), _quantization(first_in)
        sg.inputs = [current]
        for i, key in enumerate(chain):
            t_in, t_out = io(key)
            wanted = _quantization(t_in)
            if not passes_unchanged(current_q, wanted, _TYPE_NAMES.get(t_in.type, "")):
                requantized = tensor(t_in, True)
                operator(quantize_code, [current], [requantized])
                current = requantized
            last = i == len(chain) - 1
            dtype = _TYPE_NAMES.get(t_out.type, "")
            plain = not last and passes_unchanged(_quantization(t_out), _quantization(io(chain[i + 1])[0]), dtype)
            out = tensor(t_out, not plain, last)
            call = operator(if_code, [0, current], [out])
            call.builtinOptionsType = schema.BuiltinOptions.IfOptions
            call.builtinOptions = schema.IfOptionsT()
            call.builtinOptions.thenSubgraphIndex = call.builtinOptions.elseSubgraphIndex = sigs[key].subgraphIndex
            current, current_q = out, _quantization(t_out)
        sg.outputs = [current]
        m.subgraphs.append(sg)
        sd = schema.SignatureDefT()
        sd.signatureKey, sd.subgraphIndex = vid, len(m.subgraphs) - 1
        maps = []
        ends = ((sigs[chain[0]].inputs[0].name, sg.inputs[0]), (sigs[chain[-1]].outputs[0].name, current))
        for name, index in ends:
            tm = schema.TensorMapT()
            tm.name, tm.tensorIndex = _key(name), index
            maps.append(tm)
        sd.inputs, sd.outputs = [maps[0]], [maps[1]]
        m.signatureDefs.append(sd)
    return _pack(schema, m)
