"""Which operators an exported model uses, and whether the target's runtime supports them all."""

from __future__ import annotations

from restnet_compile.config.device import Target
from restnet_compile.errors import BadInputError
from restnet_compile.export.graph_memory import read_graphs


def tflite_ops(model: bytes) -> dict[str, list[str]]:
    """Builtin operator names of every signature's subgraph, in execution order, keyed by signature."""
    return {key: [op.name for op in graph.ops] for key, graph in read_graphs(model).items()}


def check_ops(ops_by_variant: dict[str, list[str]], target: Target) -> None:
    """Refuse a variant that uses an operator outside ``target.ops_allow``.

    Raises:
        BadInputError: names the variant, the operator and the target.
    """
    if target.ops_allow is None:
        return
    allowed = set(target.ops_allow)
    for variant, ops in sorted(ops_by_variant.items()):
        bad = sorted(set(ops) - allowed)
        if bad:
            raise BadInputError(
                f"variant {variant} uses op {bad[0]} that target {target.name} does not support "
                f"(supported: {', '.join(sorted(allowed))})"
            )
