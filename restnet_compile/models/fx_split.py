"""The generic block split: any model ``torch.fx`` (or ``torch.export``) can trace becomes a ``BlockSequence``.

The rule (see :mod:`restnet_compile.models.fx_graph` for the terms):

1. Trace the model (:mod:`restnet_compile.models.fx_trace`) and run the graph once on a probe batch; the graph must
   give the model's own logits. The logits are the output itself when it is a tensor; in a dict the key ``logits``;
   otherwise the first ``(batch, num_classes)`` tensor of the dict or tuple. The head returns only them.
2. Find the valid cuts (one tensor carries everything across), the body cuts (feature maps or token sequences) and
   the head start (the last body cut before pooling, flatten or the classifier).
3. Choose the blocks. By default: group the body cuts by the multiply-adds computed before them and keep one cut per
   group, the shallowest in the module tree and of those the last (after the activation and pooling that follow a
   convolution; at the end of a stage rather than inside the next one's patch merging), then pick
   ``min(max_blocks, groups)`` of them, the last being the head start, minimising the sum of squared multiply-adds
   per block (blocks of roughly equal cost). With ``split`` (module or fx node names, as listed by
   :func:`cut_points`), the cuts are after the named ones, then the head start.
4. Each block is a :class:`GraphBlock` around a ``GraphModule`` of its slice of the graph (parameters shared with
   the model), so ONNX export and FLOP counting see ordinary modules. A block that would write into its input (an
   in-place op first) clones it.
5. The blocks joined must reproduce the logits to ``TOLERANCE`` (:mod:`restnet_compile.models.exact`), or the
   split is refused.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.exact import TOLERANCE, largest_difference, probe_input
from restnet_compile.models.fx_graph import (
    PROBE_BATCH,
    Cuts,
    find_cuts,
    logits_key,
    pick,
    probe,
    rewrite_batch_sizes,
    select_output,
)
from restnet_compile.models.fx_trace import failure_text, trace_attempts
from restnet_compile.models.input_errors import input_failure

DEFAULT_MAX_BLOCKS = 6
_LISTED = 24  # cut points named in an error
_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.iand, operator.ior}


class UntraceableError(BadInputError):
    """No tracer gave a graph of the model; ``reason`` says where tracing stopped and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _runs(module: nn.Module, shape: tuple[int, int, int]) -> bool:
    """Whether ``module`` runs on two zero images of ``shape`` (two: batch norm in training mode needs them)."""
    try:
        with torch.no_grad():
            module(torch.zeros(2, *shape))
    except Exception:
        return False
    return True


def _reference(module: nn.Module, name: str, x: torch.Tensor, num_classes: int | None, errors: list) -> tuple:
    """The model's logits on ``x`` and where they are in its output."""
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:
        if errors:  # neither traceable nor runnable: the trace failure says more
            raise UntraceableError(failure_text(errors) + f"; it fails on input {_shape(x.shape[1:])} too") from None
        raise input_failure(f"model {name}", x.shape[1:], exc, lambda shape: _runs(module, shape)) from None
    try:
        key = logits_key(out, int(x.shape[0]), num_classes)
    except ValueError as exc:
        raise BadInputError(f"model {name}: {exc}") from None
    return key, pick(out, key)


def traced(module: nn.Module, name: str, x: torch.Tensor, num_classes: int | None) -> tuple:
    """The first traced graph that gives the model's logits: ``(graph, facts, logits key, logits shape)``.

    Raises:
        UntraceableError: no tracer gave a graph that runs and computes the model's logits.
        BadInputError: the model cannot take ``x`` or returns no logits.
    """
    errors: list[tuple[str, BaseException]] = []
    reference = None
    for label, attempt in trace_attempts(module, x):
        try:
            gm = attempt()
        except Exception as exc:
            errors.append((label, exc))
            gm = None
        if reference is None:
            reference = _reference(module, name, x, num_classes, errors)
        if gm is None:
            continue
        key, want = reference
        try:
            facts, out = probe(gm, x)
            got = pick(out, key)
            diff = float((got - want).abs().max()) / max(1.0, float(want.abs().max()))
        except Exception as exc:
            errors.append((label, exc))
            continue
        if diff <= TOLERANCE:
            return gm, facts, key, tuple(want.shape)
        errors.append((label, ValueError(f"the traced graph computes other logits (difference {diff:.1e})")))
    raise UntraceableError(failure_text(errors))


def _valid_names(cuts: Cuts) -> str:
    names = [cuts.names[i] for i in cuts.body]
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _named_cut(cuts: Cuts, target: str, name: str) -> int:
    where = cuts.modules.get(target)
    if where is None:
        where = next((i for i, n in enumerate(cuts.order) if n.name == target), None)
    valid = f"valid cut points: {_valid_names(cuts)}"
    if where is None or where == 0:
        raise BadInputError(f"model {name}: split: no module or graph node {target!r} to cut after; {valid}")
    crossing = [repr(cuts.names[cuts.order.index(n)]) for n in cuts.crossing(where)]
    if where not in cuts.valid and len(crossing) > 1:
        both = "both" if len(crossing) == 2 else "all"
        raise BadInputError(
            f"model {name}: split: cannot cut after {target!r}, inside a residual or branch: "
            f"{', '.join(crossing[:-1])} and {crossing[-1]} {both} cross it; {valid}"
        )
    if where > cuts.head_start:
        raise BadInputError(
            f"model {name}: split: {target!r} lies in the head, after {cuts.names[cuts.head_start]!r}; {valid}"
        )
    if where not in cuts.body:
        shape = cuts.facts[cuts.order[where]].shape
        got = f"shape {_shape(shape)}" if shape else "no tensor"
        raise BadInputError(
            f"model {name}: split: after {target!r} comes {got}, not a feature map or token sequence; {valid}"
        )
    return where


def _balanced(costs: list[int], blocks: int) -> list[int]:
    """Indices into the increasing cumulative ``costs`` ending at the last, minimising the sum of squared steps."""
    m = len(costs)
    best: list[list[float]] = [[float(c) ** 2 for c in costs]]
    back: list[list[int]] = [[-1] * m]
    for b in range(1, blocks):
        row, arg = [float("inf")] * m, [-1] * m
        for j in range(b, m):
            for i in range(b - 1, j):
                score = best[b - 1][i] + float(costs[j] - costs[i]) ** 2
                if score < row[j]:
                    row[j], arg[j] = score, i
        best.append(row)
        back.append(arg)
    picked, j = [], m - 1
    for b in range(blocks - 1, -1, -1):
        picked.append(j)
        j = back[b][j]
    return picked[::-1]


def choose_cuts(cuts: Cuts, max_blocks: int) -> list[int]:
    """The default rule: up to ``max_blocks`` blocks of roughly equal multiply-adds, never inside a residual."""
    pick: dict[int, int] = {}  # multiply-adds before the cut -> the cut chosen among those with as many
    for i in cuts.body:
        macs = cuts.macs_through(i)
        if macs not in pick or cuts.depth(i) <= cuts.depth(pick[macs]):
            pick[macs] = i
    pick[cuts.macs_through(cuts.head_start)] = cuts.head_start  # the last block ends where the head starts
    groups = sorted((macs, i) for macs, i in pick.items() if macs > 0) or [(0, cuts.head_start)]
    costs = [macs for macs, _ in groups]
    return [groups[k][1] for k in _balanced(costs, min(max_blocks, len(groups)))]


class GraphBlock(nn.Module):
    """A slice of a traced graph as a module. Its ``repr`` names the slice's code by hash, so two splits that move a
    functional op (a ``view``, an ``F.relu``) between blocks never look alike to a model digest.

    Args:
        graph_module: The slice.
        label: What it is (``CNN block``, ``CNN head``).
    """

    def __init__(self, graph_module: fx.GraphModule, label: str) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)

    def extra_repr(self) -> str:
        code = hashlib.sha256(self.graph_module.code.encode()).hexdigest()[:16]
        return f"{self.label}, code sha256 {code}"


def _mutates_input(gm: fx.GraphModule, src: fx.Node, nodes: list[fx.Node]) -> bool:
    for u in nodes:
        if not u.args or u.args[0] is not src:
            continue
        if u.op == "call_module" and getattr(gm.get_submodule(str(u.target)), "inplace", False):
            return True
        if u.op == "call_method" and str(u.target).endswith("_"):
            return True
        name = str(getattr(u.target, "_opname", getattr(u.target, "__name__", "")))
        if u.op == "call_function" and (u.target in _INPLACE_FUNCS or name.endswith("_") or u.kwargs.get("inplace")):
            return True
    return False


def _slice(gm: fx.GraphModule, cuts: Cuts, start: int, stop: int, out: fx.Node, label: str) -> GraphBlock:
    """The nodes after ``order[start]`` through ``order[stop]`` as a module from that value to ``out``.

    Maps cross blocks channels-first: a channels-last input is permuted back, a channels-last output permuted.
    """
    graph = fx.Graph()
    src = cuts.order[start]
    body = cuts.order[start + 1 : stop + 1]
    x = graph.placeholder("x")
    if start in cuts.channels_last:
        x = graph.call_method("permute", (x, 0, 2, 3, 1))
    elif _mutates_input(gm, src, body):
        x = graph.call_method("clone", (x,))
    env: dict[fx.Node, fx.Node] = {src: x}
    data = set(cuts.order)

    def arg(n: fx.Node) -> fx.Node:
        if n not in env:
            if n in data:
                raise AssertionError(f"{n.name} crosses a valid cut")  # find_cuts guarantees it does not
            env[n] = graph.node_copy(n, arg)  # a parameter or constant: each block has its own copy
        return env[n]

    for n in body:
        env[n] = graph.node_copy(n, arg)
    result = arg(out)
    if stop in cuts.channels_last and out is cuts.order[stop]:
        result = graph.call_method("permute", (result, 0, 3, 1, 2))
    graph.output(result)
    return GraphBlock(fx.GraphModule(gm, graph), label)


def analyse(
    module: nn.Module, name: str, input_shape: tuple[int, int, int], num_classes: int | None = None
) -> tuple[fx.GraphModule, Cuts, tuple]:
    """Trace ``module`` and find its cut points: ``(graph returning the logits, cuts, where the logits are)``.

    Raises:
        UntraceableError: no tracer gives a graph of the model.
        BadInputError: no logits, or no cut point before the head.
    """
    module.eval()
    x = probe_input(input_shape, PROBE_BATCH)
    gm, facts, key, shape = traced(module, name, x, num_classes)
    rewrite_batch_sizes(gm, facts, PROBE_BATCH)
    select_output(gm, key, facts, shape)
    cuts = find_cuts(gm, facts, PROBE_BATCH)
    if not cuts.body:
        raise BadInputError(
            f"model {name}: no point where one feature map or token sequence carries everything to the head"
        )
    return gm, cuts, key


@dataclass(frozen=True)
class CutPoint:
    """A point ``split:`` can name.

    Attributes:
        name: The module or graph node the cut is after.
        output: The value crossing the cut (``map 32x14x14``, ``tokens 50x64``; channels-last maps shown as
            channels-first, as the blocks emit them).
        macs_before: Multiply-adds per image computed before the cut.
    """

    name: str
    output: str
    macs_before: int


def cut_points(
    module: nn.Module, name: str, input_shape: tuple[int, int, int], num_classes: int | None = None
) -> list[CutPoint]:
    """Every point ``module`` can be cut at before its head, in order (the last one is the head start)."""
    _, cuts, _ = analyse(module, name, input_shape, num_classes)
    points = []
    for i in cuts.body:
        shape = (cuts.facts[cuts.order[i]].shape or ())[1:]
        kind = "tokens" if len(shape) == 2 else "map"
        if i in cuts.channels_last:
            shape = (shape[2], shape[0], shape[1])
        points.append(CutPoint(cuts.names[i], f"{kind} {_shape(shape)}", cuts.macs_through(i)))
    return points


def fx_split(
    module: nn.Module,
    name: str,
    input_shape: tuple[int, int, int],
    split: Sequence[str] | None = None,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    num_classes: int | None = None,
) -> BlockSequence:
    """Split any traceable model into blocks and a head by the rule above.

    Args:
        module: The model (put in eval mode: training-only branches are not kept).
        name: The model's name, for messages.
        input_shape: ``(C, H, W)`` of one image.
        split: Module or fx node names to cut after, instead of the default rule.
        max_blocks: Most blocks the default rule makes.
        num_classes: Classes the logits must have (None: any ``(batch, K)`` output).

    Raises:
        UntraceableError: no tracer gives a graph of the model.
        BadInputError: bad ``split`` names, no cut point, no logits, or blocks that do not reproduce the model.
    """
    if max_blocks < 1:
        raise BadInputError(f"model {name}: max_blocks must be at least 1, not {max_blocks}")
    gm, cuts, key = analyse(module, name, input_shape, num_classes)
    ends = sorted({_named_cut(cuts, s, name) for s in split} | {cuts.head_start}) if split else None
    ends = ends or choose_cuts(cuts, max_blocks)
    cls = type(module).__name__
    logits = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    blocks = [_slice(gm, cuts, a, b, cuts.order[b], f"{cls} block") for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    head = _slice(gm, cuts, ends[-1], len(cuts.order) - 1, logits, f"{cls} head")
    seq = BlockSequence(blocks, head, input_shape, name, [cuts.names[i] for i in ends]).eval()
    diff = largest_difference(lambda t: pick(module(t), key), seq, input_shape)
    if diff > TOLERANCE:
        raise BadInputError(
            f"model {name}: the blocks found do not reproduce the model (difference {diff:.1e} > {TOLERANCE:g}); "
            "name other cut points with `split:`"
        )
    return seq
