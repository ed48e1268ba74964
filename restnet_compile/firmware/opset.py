"""The operators a bundle uses, the op resolver methods that add them and the kernel registrations they link.

Read from the segment files and from TFLite Micro's own ``micro_mutable_op_resolver.h``, so a TFLM tree with other
operators needs no table here.
"""

from __future__ import annotations

import re
from pathlib import Path

from restnet_compile.bundle.manifest import Manifest
from restnet_compile.errors import BadInputError
from restnet_compile.export.ops import tflite_ops

RESOLVER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
_METHOD = re.compile(r"TfLiteStatus Add(\w+)\(")


def bundle_ops(bundle: Path, manifest: Manifest) -> list[str]:
    """Builtin operator names of every segment, sorted."""
    ops: set[str] = set()
    for seg in manifest.segments or ():
        for names in tflite_ops((bundle / seg.file).read_bytes()).values():
            ops.update(names)
    return sorted(ops)


def _methods(tflm: Path) -> dict[str, str]:
    """Resolver method (``AddConv2D``) -> its text up to the next method (default argument and body)."""
    text = (tflm / RESOLVER).read_text()
    starts = [(m.start(), m.group(1)) for m in _METHOD.finditer(text)]
    ends = [s for s, _ in starts[1:]] + [len(text)]
    return {f"Add{name}": text[s:e] for (s, name), e in zip(starts, ends, strict=True)}


def library_ops(ops: list[str]) -> list[str]:
    """The operators whose kernels go into the TFLM library: those the built-in ``tflm-int8`` target allows, and any
    other the bundle uses. Every bundle of that target shares one library (per TFLM tree, CPU, kernels and compiler)."""
    from restnet_compile.config.device import load_target

    allowed = load_target("tflm-int8").ops_allow or ()
    return sorted(set(ops) | set(allowed))


def resolver_methods(tflm: Path, ops: list[str], strict: bool = True) -> list[str]:
    """``AddConv2D``-style methods that add ``ops`` (``CONV_2D``...); with ``strict`` False, those it has.

    Raises:
        BadInputError: ``strict`` and an operator this TFLM tree's op resolver cannot add (exit code 2).
    """
    by_name = {m[3:].lower(): m for m in _methods(tflm)}
    calls = []
    for op in ops:
        method = by_name.get(op.replace("_", "").lower())
        if method is None and not strict:
            continue
        if method is None:
            raise BadInputError(f"the bundle uses operator {op}, which this TensorFlow Lite Micro tree cannot resolve")
        calls.append(method)
    return calls


def registrations(tflm: Path, methods: list[str]) -> tuple[str, ...]:
    """The kernel registration functions (``Register_CONV_2D``) the methods link, sorted."""
    text = _methods(tflm)
    return tuple(sorted({r for m in methods for r in re.findall(r"\b(Register_\w+)\(\)", text[m])}))
