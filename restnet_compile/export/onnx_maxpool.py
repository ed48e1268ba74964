"""Give every padded ONNX ``MaxPool`` an explicit, quantization-safe ``Pad`` before onnx2tf sees it.

ONNX pads a max-pool with -inf. onnx2tf writes that as ``PADV2`` with the dtype's minimum (-3.4e38) in front of a
VALID ``MAX_POOL_2D``. In float that is exact, but full-integer quantization gives ``PADV2``'s input and output one
scale, so the range of the tensor in front of the pool becomes [-3.4e38, max]: scale ~1e36, every real activation
quantizes to the same integer, and XNNPACK refuses the next convolution ("failed to prepare"). ResNet's stem
(conv -> ReLU -> padded 3x3 max-pool) hits this.

The rewrite is exact, with no assumption on the data:

* input made non-negative by its producer (``Relu``, ``Clip`` with a min >= 0, ``Sigmoid``, ``HardSigmoid``,
  ``Softplus``): pad with 0. Every window holds at least one real element (pads < kernel), and all real elements are
  >= 0, so a 0 in the padding never changes the max.
* any other input: pad with ``edge`` (replicate the border). A window that reaches into the padding on one side also
  holds that side's border element, which is the value replicated there, so the max is unchanged.

The pool then runs with zero pads (and ``ceil_mode`` folded into the explicit padding). Dilated pools, and pools
whose input shape is unknown, are left alone.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

_NON_NEGATIVE = {"Relu", "Sigmoid", "HardSigmoid", "Softplus"}


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value: object) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    node.attribute.append(helper.make_attribute(name, value))


def _constants(model: onnx.ModelProto) -> dict[str, float]:
    """Scalar constants by tensor name (initializers and ``Constant`` nodes)."""
    out: dict[str, float] = {}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.size == 1:
            out[init.name] = float(arr.reshape(()))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            value = _attr(node, "value", None)
            if isinstance(value, onnx.TensorProto):
                arr = numpy_helper.to_array(value)
                if arr.size == 1:
                    out[node.output[0]] = float(arr.reshape(()))
    return out


def _non_negative(producer: onnx.NodeProto | None, constants: dict[str, float]) -> bool:
    if producer is None:
        return False
    if producer.op_type in _NON_NEGATIVE:
        return True
    if producer.op_type == "Clip":
        low = constants.get(producer.input[1]) if len(producer.input) > 1 and producer.input[1] else None
        return low is not None and low >= 0
    return False


def _spatial_shapes(model: onnx.ModelProto) -> dict[str, tuple[list[int], int]]:
    """Static spatial dims (after N, C) and element type of every tensor ONNX shape inference can tell."""
    inferred = onnx.shape_inference.infer_shapes(model)
    out: dict[str, tuple[list[int], int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in info.type.tensor_type.shape.dim]
        if len(dims) > 2 and all(v > 0 for v in dims[2:]):
            out[info.name] = (dims[2:], info.type.tensor_type.elem_type)
    return out


def _ceil_extra(size: int, kernel: int, stride: int, begin: int, end: int) -> int:
    """Extra end padding that reproduces ``ceil_mode=1`` with ``ceil_mode=0`` (PyTorch / ONNX output size rule)."""
    out = math.ceil((size + begin + end - kernel) / stride) + 1
    if (out - 1) * stride >= size + begin:  # the last window must start inside the input or the begin padding
        out -= 1
    return max(0, (out - 1) * stride + kernel - (size + begin + end))


def explicit_maxpool_padding(model: onnx.ModelProto) -> int:
    """Rewrite ``model`` in place as described in the module docstring; returns the number of pools rewritten."""
    graph = model.graph
    if not any(node.op_type == "MaxPool" for node in graph.node):
        return 0  # shape inference copies the whole model: skip it for graphs without pools
    shapes = _spatial_shapes(model)
    producers = {out: node for node in graph.node for out in node.output}
    constants = _constants(model)
    rewritten = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        known = shapes.get(node.input[0]) if node.op_type == "MaxPool" else None
        plan = _plan(node, known[0], producers, constants) if known else None
        if plan is None:
            new_nodes.append(node)
            continue
        pads, mode = plan
        pads_name, padded = f"{node.output[0]}_explicit_pads", f"{node.output[0]}_padded_input"  # unique per pool
        graph.initializer.append(numpy_helper.from_array(_int64(pads), pads_name))
        inputs = [node.input[0], pads_name]
        if mode == "constant" and known is not None:
            zero_name = f"{pads_name}_zero"
            graph.initializer.append(numpy_helper.from_array(_zero(known[1]), zero_name))
            inputs.append(zero_name)
        new_nodes.append(helper.make_node("Pad", inputs, [padded], mode=mode, name=f"{pads_name}_pad"))
        node.input[0] = padded
        spatial = len(pads) // 2 - 2
        _set_attr(node, "pads", [0] * (2 * spatial))
        _set_attr(node, "ceil_mode", 0)
        new_nodes.append(node)
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    return rewritten


def _plan(
    node: onnx.NodeProto,
    shape: list[int],
    producers: dict[str, onnx.NodeProto],
    constants: dict[str, float],
) -> tuple[list[int], str] | None:
    """The full ONNX ``Pad`` pads (N, C, spatial...) and mode for a padded ``MaxPool``, or None to leave it."""
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(node.output) != 1:
        return None
    kernel = list(_attr(node, "kernel_shape", []))  # type: ignore[call-overload]
    spatial = len(kernel)
    pads = list(_attr(node, "pads", [0] * (2 * spatial)))  # type: ignore[call-overload]
    strides = list(_attr(node, "strides", [1] * spatial))  # type: ignore[call-overload]
    if any(d != 1 for d in _attr(node, "dilations", [1] * spatial)):  # type: ignore[attr-defined]
        return None
    if len(shape) != spatial:
        return None
    begin, end = pads[:spatial], pads[spatial:]
    if _attr(node, "ceil_mode", 0):
        end = [e + _ceil_extra(n, k, s, b, e) for n, k, s, b, e in zip(shape, kernel, strides, begin, end, strict=True)]
    if not any(begin) and not any(end):
        return None
    mode = "constant" if _non_negative(producers.get(node.input[0]), constants) else "edge"
    return [0, 0, *begin, 0, 0, *end], mode


def _int64(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _zero(elem_type: int) -> np.ndarray:
    return np.zeros((), dtype=helper.tensor_dtype_to_np_dtype(elem_type))
