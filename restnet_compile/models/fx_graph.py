"""What the generic block split is chosen from: a traced graph, run once on a probe batch, and its cut points.

Terms used here and in :mod:`restnet_compile.models.fx_split`:

* **data node**: a node that depends on the input. Other nodes (parameters, buffers, constants computed from them)
  are *free*: a block that needs one gets its own copy.
* **valid cut** after node ``n``: ``n`` is a tensor and the only data value computed at or before ``n`` that is still
  used after it -- no skip connection and no second live tensor crosses the cut.
* **body cut**: a valid cut whose value is a feature map ``(B, C, H, W)`` or a token sequence ``(B, N, D)`` and is not
  the result of global pooling (a pooling or reduction op with a ``1 x 1`` map or a single token as output).
* **head start**: the last body cut before the first valid cut that is global pooling or has fewer than three axes
  (flatten, a class token, the logits). The head is everything after it.
* **channels-last** body cut: a 4-D value whose layout the nearest layout-fixing op upstream (linear or layer norm on
  the last axis, a permute to ``(0, 2, 3, 1)``; against convolution, batch norm, 2-D pooling) says is
  ``(B, H, W, C)``, as in timm's Swin. Its block emits it as ``(B, C, H, W)`` and the next block permutes it back, so
  every map between blocks is channels-first.
* **name** of a cut: the outermost module (``layer2``, ``features.3``) that runs once and ends at that node, else the
  fx node's own name (``relu_1``, ``view``).
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

PROBE_BATCH = 2
_REDUCTIONS = {"mean", "amax", "max", "sum"}
_SIZE_OPS = {"size", "sym_size"}
_CHANNELS_FIRST = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass(frozen=True)
class Fact:
    """What one node produced on the probe batch.

    Attributes:
        shape: The tensor's shape, or None for anything else.
        value: The value of an ``int`` result (a size), else None.
        macs: Multiply-adds per image of the node itself.
    """

    shape: tuple[int, ...] | None
    value: int | None = None
    macs: int = 0


class _Probe(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, counter: FlopCounterMode, batch: int) -> None:
        super().__init__(gm)
        self.counter, self.batch = counter, batch
        self.facts: dict[fx.Node, Fact] = {}

    def run_node(self, n: fx.Node) -> object:
        before = self.counter.get_total_flops()
        out = super().run_node(n)
        macs = (self.counter.get_total_flops() - before) // (2 * self.batch)
        shape = tuple(int(s) for s in out.shape) if isinstance(out, torch.Tensor) else None
        self.facts[n] = Fact(shape, out if type(out) is int else None, int(macs))
        return out


def probe(gm: fx.GraphModule, x: torch.Tensor) -> tuple[dict[fx.Node, Fact], object]:
    """Run ``gm`` on ``x``: every node's facts and the graph's output."""
    counter = FlopCounterMode(display=False)
    runner = _Probe(gm, counter, int(x.shape[0]))
    with counter, torch.no_grad():
        out = runner.run(x)
    return runner.facts, out


def _fits(t: object, batch: int, num_classes: int | None) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[0] == batch and num_classes in (None, t.shape[1])


def _shape_text(v: object) -> str:
    return "x".join(map(str, v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


def logits_key(out: object, batch: int, num_classes: int | None) -> tuple:
    """Where the logits are in a model's output: ``()`` for a tensor, ``("logits",)`` or ``(k,)`` in a dict or tuple.

    The rule: a tensor output is the logits; in a dict the key ``logits``; otherwise the first tensor of shape
    ``(batch, num_classes)`` in the dict's or tuple's order (any ``(batch, K)`` tensor when ``num_classes`` is None).

    Raises:
        ValueError: no output is logits; the message describes what the model returned.
    """
    want = f"logits of {num_classes} classes" if num_classes else "logits (batch x classes)"
    if isinstance(out, torch.Tensor):
        if _fits(out, batch, num_classes):
            return ()
        raise ValueError(f"its output is not {want}: got a tensor {_shape_text(out)}")
    if isinstance(out, Mapping):
        items = list(out.items())
        if _fits(out.get("logits"), batch, num_classes):
            return ("logits",)
    elif isinstance(out, (tuple, list)):
        items = list(enumerate(out))
    else:
        raise ValueError(f"its output is not {want}: got {type(out).__name__}")
    for key, value in items:
        if _fits(value, batch, num_classes):
            return (key,)
    got = ", ".join(f"{k}: {_shape_text(v)}" for k, v in items)
    raise ValueError(f"none of its outputs is {want}: got {type(out).__name__} ({got})")


def pick(out: object, key: tuple) -> torch.Tensor:
    """The logits at ``key`` (from :func:`logits_key`) in a model's output."""
    for k in key:
        out = out[k]  # type: ignore[index]
    return out  # type: ignore[return-value]


def select_output(gm: fx.GraphModule, key: tuple, facts: dict[fx.Node, Fact], shape: tuple[int, ...]) -> None:
    """Make ``gm`` return only the logits at ``key`` (of ``shape``) and drop what only the other outputs needed."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    value = out.args[0]
    for k in key:
        if isinstance(value, fx.Node):
            with gm.graph.inserting_before(out):
                item = gm.graph.call_function(operator.getitem, (value, k))
            value = item
        else:
            value = value[k]
    out.args = (value,)
    facts.setdefault(value, Fact(shape))
    gm.graph.eliminate_dead_code()
    gm.recompile()


def _op_name(gm: fx.GraphModule, n: fx.Node) -> str:
    if n.op == "call_module":
        return type(gm.get_submodule(str(n.target))).__name__.lower()
    if n.op == "call_method":
        return str(n.target)
    name = getattr(n.target, "_opname", None) or getattr(n.target, "__name__", str(n.target))
    return str(name).lower()


def _whole_shape(gm: fx.GraphModule, n: object) -> bool:
    """``x.shape`` or ``x.size()``: every axis of a tensor, the batch first."""
    if not isinstance(n, fx.Node) or not n.args or not isinstance(n.args[0], fx.Node):
        return False
    if n.op == "call_function" and n.target is getattr and n.args[1:] == ("shape",):
        return True
    return n.op == "call_method" and n.target == "size" and len(n.args) == 1 and not n.kwargs


def _is_batch_size(gm: fx.GraphModule, n: fx.Node, facts: dict[fx.Node, Fact], batch: int) -> bool:
    """``x.size(0)``, ``x.shape[0]`` or ``aten.sym_size(x, 0)``: the batch size (its value on the probe batch)."""
    if facts.get(n, Fact(None)).value != batch or n.op not in ("call_method", "call_function"):
        return False
    if not n.args or not isinstance(n.args[0], fx.Node):
        return False
    if _op_name(gm, n).split(".")[0] in _SIZE_OPS:
        return bool((len(n.args) > 1 and n.args[1] == 0) or n.kwargs.get("dim") == 0)
    return bool(n.target is operator.getitem and n.args[1] == 0 and _whole_shape(gm, n.args[0]))


def rewrite_batch_sizes(gm: fx.GraphModule, facts: dict[fx.Node, Fact], batch: int) -> None:
    """Read the batch size where it is used, from the tensor that use works on, not where it was first read.

    ``b = x.size(0)`` at the top of ``forward`` and ``x.view(b, -1)`` at the end would otherwise keep the input alive
    across every cut. Each use ``f(t, b, ...)`` reads ``t.size(0)`` instead when ``t``'s first axis is the batch; the
    split's exactness check (two batch sizes) proves the rewrite right.
    """
    for n in list(gm.graph.nodes):
        if not _is_batch_size(gm, n, facts, batch):
            continue
        for user in list(n.users):
            source = next(
                (
                    a
                    for a in user.args
                    if isinstance(a, fx.Node)
                    and a is not n
                    and a.op != "get_attr"
                    and (facts.get(a, Fact(None)).shape or (0,))[0] == batch
                ),
                None,
            )
            if source is None or user.op == "output":
                continue
            with gm.graph.inserting_before(user):
                size = gm.graph.call_method("size", (source, 0))
            size.meta["nn_module_stack"] = dict(user.meta.get("nn_module_stack") or {})
            facts[size] = facts[n]
            user.replace_input_with(n, size)
    gm.graph.eliminate_dead_code()
    gm.recompile()


def _module_paths(n: fx.Node) -> list[str]:
    stack = n.meta.get("nn_module_stack") or {}
    paths = [v[0] if isinstance(v, tuple) else str(v) for v in stack.values()]
    return [p for p in paths if p and not p.startswith("_empty")]


@dataclass
class Cuts:
    """The cut points of a graph whose only output is the logits.

    Attributes:
        order: Data nodes in execution order, the input first.
        facts: Probe facts per node.
        valid: Indices ``i`` of ``order`` after which a cut is valid.
        body: Body cuts up to and including ``head_start``.
        head_start: Index of the last body cut; the head is everything after it.
        names: Name of the cut after each node of ``order``.
        modules: Module name -> index of its last node, for modules that run once, contiguously.
        last_use: Index of the last node using each node (``len(order)``: the output).
        channels_last: Body cuts whose map is ``(B, H, W, C)``; their block emits it as ``(B, C, H, W)``.
    """

    order: list[fx.Node]
    facts: dict[fx.Node, Fact]
    valid: list[int]
    body: list[int]
    head_start: int
    names: list[str]
    modules: dict[str, int]
    last_use: dict[fx.Node, int]
    channels_last: set[int]

    def crossing(self, i: int) -> list[fx.Node]:
        """The data values alive across a cut after ``order[i]``."""
        return [n for n in self.order[: i + 1] if self.last_use[n] > i]

    def depth(self, i: int) -> int:
        """How deep the cut after ``order[i]`` lies in the module tree: a module name's parts, else one more than the
        innermost module around the node (1 for a node of the model's own ``forward``)."""
        if self.names[i] in self.modules:
            return len(self.names[i].split("."))
        return max((len(p.split(".")) for p in _module_paths(self.order[i])), default=0) + 1

    def macs_through(self, i: int) -> int:
        """Multiply-adds per image of ``order[0..i]``."""
        return sum(self.facts[n].macs for n in self.order[: i + 1])


def data_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    """Nodes that depend on the input, in execution order (the output node excluded)."""
    data: list[fx.Node] = []
    seen: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op != "output" and (n.op == "placeholder" or any(a in seen for a in n.all_input_nodes)):
            data.append(n)
            seen.add(n)
    return data


def _is_pooled(gm: fx.GraphModule, n: fx.Node, shape: tuple[int, ...]) -> bool:
    name = _op_name(gm, n).split(".")[0]
    single = (len(shape) == 4 and shape[2] * shape[3] == 1) or (len(shape) == 3 and shape[1] == 1)
    return single and ("pool" in name or name in _REDUCTIONS)


def find_cuts(gm: fx.GraphModule, facts: dict[fx.Node, Fact], batch: int) -> Cuts:
    """Valid cuts, body cuts, the head start and the names of ``gm``'s cut points."""
    order = data_nodes(gm)
    index = {n: i for i, n in enumerate(order)}
    last_use = {n: max((index.get(u, len(order)) for u in n.users), default=-1) for n in order}
    ending: dict[int, list[fx.Node]] = defaultdict(list)
    live: set[fx.Node] = set()
    valid: list[int] = []
    for i, n in enumerate(order):
        if last_use[n] > i:
            live.add(n)
            ending[last_use[n]].append(n)
        for m in ending.pop(i, []):
            live.discard(m)
        if live == {n} and facts[n].shape is not None:
            valid.append(i)
    body: list[int] = []
    for i in valid[1:] if valid and valid[0] == 0 else valid:
        shape = facts[order[i]].shape or ()
        if len(shape) < 3 or _is_pooled(gm, order[i], shape):
            break
        if len(shape) in (3, 4) and shape[0] == batch:
            body.append(i)
    names, modules = _names(order)
    last = {i for i in body if len(facts[order[i]].shape or ()) == 4 and channels_last(gm, order[i])}
    return Cuts(order, facts, valid, body, body[-1] if body else 0, names, modules, last_use, last)


def _layout_of(gm: fx.GraphModule, n: fx.Node) -> bool | None:
    """True / False when ``n`` fixes its 4-D output's layout as channels-last / channels-first, else None."""
    if n.op == "call_module":
        m = gm.get_submodule(str(n.target))
        if isinstance(m, nn.Linear) or (isinstance(m, nn.LayerNorm) and not type(m).__name__.endswith("2d")):
            return True
        return False if isinstance(m, _CHANNELS_FIRST) else None
    name = _op_name(gm, n).split(".")[0]
    if name in ("linear", "layer_norm"):
        return True
    if name in ("conv2d", "convolution", "batch_norm", "max_pool2d", "avg_pool2d"):
        return False
    if name == "permute":
        args: Any = n.args
        dims = tuple(args[1:]) if len(args) > 2 else tuple(args[1]) if len(args) > 1 else ()
        return {(0, 2, 3, 1): True, (0, 3, 1, 2): False}.get(dims)
    return None


def channels_last(gm: fx.GraphModule, n: fx.Node) -> bool:
    """Whether the 4-D value of ``n`` is ``(B, H, W, C)``: the nearest op upstream that fixes a layout decides."""
    frontier, seen = [n], {n}
    while frontier:
        node = frontier.pop(0)
        layout = _layout_of(gm, node)
        if layout is not None:
            return layout
        for a in node.all_input_nodes:
            if a not in seen and a.op != "get_attr":
                seen.add(a)
                frontier.append(a)
    return False


def _names(order: list[fx.Node]) -> tuple[list[str], dict[str, int]]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    count: dict[str, int] = defaultdict(int)
    for i, n in enumerate(order):
        for p in dict.fromkeys(_module_paths(n)):
            first.setdefault(p, i)
            last[p] = i
            count[p] += 1
    modules = {p: last[p] for p in last if count[p] == last[p] - first[p] + 1 and not _called_twice(order, p)}
    names = []
    for i, n in enumerate(order):
        ends = [p for p in _module_paths(n) if modules.get(p) == i]
        names.append(ends[0] if ends else n.name)
    return names, modules


def _called_twice(order: list[fx.Node], path: str) -> bool:
    """A leaf module called twice in a row is contiguous but still ambiguous as a name."""
    calls = [n for n in order if n.op == "call_module" and n.target == path]
    return len(calls) > 1
