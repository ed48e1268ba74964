"""Trace a model into one ``torch.fx`` graph, for the generic block split.

Tracing is tried in this order; the first graph that runs and gives the model's own outputs is used:

1. ``torch.fx`` symbolic tracing. When tracing fails inside a submodule, that submodule becomes a leaf (called as
   one opaque node, so never cut inside) and tracing is retried, up to ``MAX_LEAVES`` times.
2. The same with timm's own hints when timm is imported (its "not traceable" modules are leaves, its "not traceable"
   functions are wrapped).
3. ``torch.export`` (non-strict, dynamic batch), whose graph holds ATen ops; each node still names the module it came
   from, so cut points keep module names.

When all fail, the error names the source line tracing stopped at.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.utils._pytree as pytree
from torch import fx, nn

MAX_LEAVES = 8
_SKIP_DIRS = (str(Path(torch.__file__).parent), str(Path(__file__).resolve().parents[1]))


class _Tracer(fx.Tracer):
    """A symbolic tracer with leaves by name and type that records the innermost module a failure happened in."""

    def __init__(self, leaves: set[str], leaf_types: tuple[type, ...], autowrap: tuple[Callable, ...]) -> None:
        super().__init__(autowrap_functions=autowrap)
        self.leaves = leaves
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaves or (self.leaf_types and isinstance(m, self.leaf_types)):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> object:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            if not hasattr(exc, "restnet_module"):
                try:
                    exc.restnet_module = self.path_of_module(m)  # type: ignore[attr-defined]
                except NameError:
                    exc.restnet_module = ""  # type: ignore[attr-defined]
            raise


def _timm_hints() -> tuple[tuple[type, ...], tuple[Callable, ...]] | None:
    """timm's leaf module types and functions to wrap, when timm is imported (never imports it)."""
    fx_hints = sys.modules.get("timm.layers._fx")
    if fx_hints is None:
        return None
    return tuple(fx_hints.get_notrace_modules()), tuple(fx_hints.get_notrace_functions())


def where_it_failed(exc: BaseException) -> str:
    """``file.py:LINE `code``` of the innermost frame outside torch and this package, or ''."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not any(f.filename.startswith(d) for d in _SKIP_DIRS)
    ]
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f"{Path(f.filename).name}:{f.lineno}{code}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    where = where_it_failed(exc)
    return f"{where}: {first}" if where else first


def symbolic(module: nn.Module, hints: tuple[tuple[type, ...], tuple[Callable, ...]] | None = None) -> fx.GraphModule:
    """Trace with ``torch.fx``, turning the submodules tracing fails in into leaves (at most ``MAX_LEAVES``).

    Raises:
        Exception: the tracing error of the last attempt.
    """
    leaf_types, autowrap = hints or ((), ())
    leaves: set[str] = set()
    defaults = _defaults(module)
    while True:
        tracer = _Tracer(leaves, leaf_types, autowrap)
        try:
            graph = tracer.trace(module, concrete_args=defaults or None)
        except Exception as exc:
            path = getattr(exc, "restnet_module", "")
            if not path or path in leaves or len(leaves) >= MAX_LEAVES:
                raise
            leaves.add(path)
            continue
        _drop_specialized(graph)
        return fx.GraphModule(tracer.root, graph, type(module).__name__)


def _defaults(module: nn.Module) -> dict[str, object]:
    """``forward``'s arguments after the image with their default values (traced as constants).

    Raises:
        TypeError: ``forward`` needs more inputs than the image.
    """
    params = list(inspect.signature(module.forward).parameters.values())[1:]
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    needed = [p.name for p in params if p.kind in named and p.default is inspect.Parameter.empty]
    if needed:
        raise TypeError(f"forward needs more inputs than the image: {', '.join(needed)}")
    return {p.name: p.default for p in params if p.kind in named}


def _drop_specialized(graph: fx.Graph) -> None:
    """Remove the placeholders of arguments traced as constants, with the checks fx adds on them."""
    for p in [n for n in graph.nodes if n.op == "placeholder"][1:]:
        dependents, frontier = [], [p]
        while frontier:
            node = frontier.pop()
            dependents.append(node)
            frontier.extend(u for u in node.users if u not in dependents)
        for node in reversed(dependents):
            if not node.users:
                graph.erase_node(node)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """No log records and no prints (torch.export logs whole graphs when it fails), restored afterwards."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def exported(module: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """Trace with ``torch.export`` (non-strict, dynamic batch) and return its graph as a plain GraphModule.

    Raises:
        Exception: the export error.
    """
    batch = torch.export.Dim("batch")
    with _silenced():
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
    gm = program.module()
    for node in list(gm.graph.nodes):  # the input guard is checked at export time; blocks take other inputs
        if node.op == "call_module" and node.target == "_guards_fn":
            gm.graph.erase_node(node)
    out = next(n for n in gm.graph.nodes if n.op == "output")
    plain = fx.Graph()  # a plain graph: no pytree flattening of inputs and outputs
    env: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            flat = list(fx.map_arg(out.args[0], lambda n: env[n]))
            plain.output(pytree.tree_unflatten(flat, program.call_spec.out_spec))  # the model's own structure
        else:
            env[node] = plain.node_copy(node, lambda n: env[n])
    return fx.GraphModule(gm, plain, type(module).__name__)


def trace_attempts(module: nn.Module, example: torch.Tensor) -> list[tuple[str, Callable[[], fx.GraphModule]]]:
    """The ways of tracing ``module``, in the order they are tried: ``(label, trace)``."""
    attempts: list[tuple[str, Callable[[], fx.GraphModule]]] = [("torch.fx", lambda: symbolic(module))]
    hints = _timm_hints()
    if hints is not None:
        attempts.append(("torch.fx with timm's hints", lambda: symbolic(module, hints)))
    attempts.append(("torch.export", lambda: exported(module, example)))
    return attempts


def failure_text(errors: list[tuple[str, BaseException]]) -> str:
    """One line from the errors of every attempt: fx's reason (with its source line) first."""
    first_label, first = errors[0]
    text = f"{first_label} cannot trace it ({_describe(first)})"
    others = [f"{label}: {_describe(exc)}" for label, exc in errors[1:]]
    return text + (f"; {'; '.join(others)}" if others else "")
