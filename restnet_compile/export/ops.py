"""Which operators an exported model uses, and whether the target's runtime supports them all."""

from __future__ import annotations

from restnet_compile.config.device import Target
from restnet_compile.errors import BadInputError


def tflite_ops(model: bytes) -> dict[str, list[str]]:
    """Builtin operator names of every signature's subgraph, in execution order, keyed by signature."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    parsed = schema.ModelT.InitFromPackedBuf(model, 0)
    by_index = {sig.subgraphIndex: sig.signatureKey.decode() for sig in parsed.signatureDefs or []}
    out = {}
    for index, graph in enumerate(parsed.subgraphs):
        key = by_index.get(index, (graph.name or b"").decode() or str(index))
        codes = parsed.operatorCodes
        out[key] = [
            names.get(max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode), "CUSTOM")
            for op in graph.operators
        ]
    return out


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
