"""Trace the leaf ops of one forward pass: execution order, tensor sizes and weights.

A leaf module's call is one op. A graph traced by ``torch.export`` (the generic split's fallback: see
:mod:`restnet_compile.models.fx_trace`) calls no module: its nodes are ATen ops reading the parameters directly. Each
node still records the module it came from (``nn_module_stack``), so such a graph is replayed node by node and the
nodes that one call of a leaf module produced count as that module's op, with its name, kind, tensors and weight:
the op list is the one the same model split by ``torch.fx`` gives. Functional ops outside any leaf module are left
out in both cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn


@dataclass(frozen=True)
class OpRecord:
    """One leaf module call.

    Attributes:
        name: Qualified module name.
        kind: Module class name (``Conv2d``, ``Linear``...).
        in_elems: Elements of the input tensor(s).
        out_elems: Elements of the output tensor.
        weight_elems: Elements of the module's weight tensor (biases are per-channel data, counted apart).
        out_channels: Output channels / features of a conv or linear layer, else 0.
        macs: Multiply-adds of the op where the trace computed them (an op replayed from a ``torch.export`` graph,
            which FLOP counting attributes to the whole graph), else None (read them from the FLOP report).
    """

    name: str
    kind: str
    in_elems: int
    out_elems: int
    weight_elems: int
    out_channels: int = 0
    macs: int | None = None


# Element-wise modules that exporters fuse into the preceding op: no buffer, no dispatch of their own.
FUSED_KINDS = {"BatchNorm2d", "BatchNorm1d", "ReLU", "ReLU6", "Identity", "Dropout", "Flatten"}


def _elems(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(_elems(v) for v in value)
    return 0


def _is_aten(node: fx.Node) -> bool:
    return node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)


def _exported_graph(module: nn.Module) -> bool:
    """Whether ``module`` is a graph of ATen ops that knows which module each op came from (``torch.export``)."""
    if not isinstance(module, fx.GraphModule):
        return False
    return any(_is_aten(n) and n.meta.get("nn_module_stack") for n in module.graph.nodes)


def _leaf_call(gm: fx.GraphModule, node: fx.Node) -> tuple[str, str, str] | None:
    """``(call key, module path, class name)`` of the leaf module call ``node`` belongs to; None outside any leaf.

    A module is a leaf when it has no child modules; the graph keeps a module only where it holds parameters or
    buffers, so one it lacks (``ReLU``, ``MaxPool2d``) is a leaf when it is a ``torch.nn`` class.
    """
    stack = node.meta.get("nn_module_stack") if _is_aten(node) else None
    if not stack:
        return None
    key, (path, cls) = next(reversed(stack.items()))
    type_name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    kind = type_name.rpartition(".")[2]
    try:
        held = gm.get_submodule(path) if path else gm
    except AttributeError:
        held = None
    if held is not None:
        return (key, path, kind) if path and not any(True for _ in held.children()) else None
    leaf = type_name.startswith("torch.nn.modules.") and kind not in {"Sequential", "ModuleList", "ModuleDict"}
    return (key, path, kind) if leaf else None


def replay_exported(gm: fx.GraphModule, prefix: str, inputs: tuple) -> list[OpRecord]:
    """Run a ``torch.export`` graph on ``inputs`` node by node; one record per call of a leaf module."""
    values: dict[fx.Node, object] = {}

    class _Keep(fx.Interpreter):
        def run_node(self, n: fx.Node) -> object:
            values[n] = out = super().run_node(n)
            return out

    _Keep(gm).run(*inputs)
    groups: list[tuple[tuple[str, str, str], list[fx.Node]]] = []
    for node in gm.graph.nodes:
        call = _leaf_call(gm, node)
        if call is None:
            continue
        if groups and groups[-1][0] == call:
            groups[-1][1].append(node)
        else:
            groups.append((call, [node]))
    return [_record(gm, prefix, call[1], call[2], nodes, values) for call, nodes in groups]


def _record(
    gm: fx.GraphModule, prefix: str, path: str, kind: str, nodes: list[fx.Node], values: dict[fx.Node, object]
) -> OpRecord:
    outside = [a for n in nodes for a in n.all_input_nodes if a not in nodes and a.op != "get_attr"]
    in_elems = sum(_elems(values.get(a)) for a in dict.fromkeys(outside))
    out_elems = _elems(values.get(nodes[-1]))
    try:
        weight = getattr(gm.get_submodule(path), "weight", None)
    except AttributeError:
        weight = None
    weights = weight.numel() if isinstance(weight, torch.Tensor) else 0
    channels = int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() >= 2 else 0
    macs = out_elems * (weights // channels) if channels else 0
    return OpRecord(f"{prefix}.{path}" if prefix else path, kind, in_elems, out_elems, weights, channels, macs)


def trace_ops(model: nn.Module, input_shape: tuple[int, ...]) -> list[OpRecord]:
    """Run ``model`` once on zeros and record every leaf module call in order (see the module doc)."""
    records: list[OpRecord] = []
    handles = []
    for name, module in model.named_modules():
        if _exported_graph(module):

            def replay(mod: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
                records.extend(replay_exported(mod, name, inputs))  # type: ignore[arg-type]

            handles.append(module.register_forward_hook(replay))
            continue
        if any(True for _ in module.children()):
            continue

        def hook(mod: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
            weight = getattr(mod, "weight", None)
            weights = weight.numel() if isinstance(weight, torch.Tensor) else 0
            channels = int(getattr(mod, "out_channels", 0) or getattr(mod, "out_features", 0))
            records.append(OpRecord(name, type(mod).__name__, _elems(inputs), _elems(output), weights, channels))

        handles.append(module.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return records
