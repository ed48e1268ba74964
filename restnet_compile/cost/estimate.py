"""Per-variant cost estimates against a device profile: FLOPs, params, RAM, flash, latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from restnet_compile.config.device import Profile
from restnet_compile.cost.flops import FlopReport, count_flops
from restnet_compile.cost.latency import roofline_ms
from restnet_compile.cost.trace import FUSED_KINDS, OpRecord, trace_ops

DTYPE_BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
# Per output channel a quantized model stores an int32 bias and a float scale + zero point.
_PER_CHANNEL_BYTES = {"int8": 12, "fp16": 2, "fp32": 4}
_FILE_OVERHEAD = 4096  # flatbuffer / protobuf framing, signature tables


@dataclass(frozen=True)
class CostReport:
    """Estimated costs of one variant on one profile.

    Attributes:
        flops: fvcore multiply-adds for one image.
        params: Parameters the variant uses.
        ram_bytes: Peak activation memory (+ weights where the runtime keeps them in RAM) + runtime RAM.
        model_bytes: Estimated bytes of this variant's model alone in the target dtype.
        flash_bytes: ``model_bytes`` + the runtime's own code.
        latency_ms: Roofline estimate at the profile's percentile.
        uncounted_ops: Ops nothing counted (views and other free ops are not listed).
        elementwise: Element-wise, normalization and pooling operations, not in ``flops``.
        latency_terms: (MACs, bytes moved, output elements) per dispatched op: what the latency model and its
            calibration read.
        ram_source: Where ``ram_bytes`` comes from: ``torch-trace`` before export, ``tflite-graph`` after.
        arena_bytes: Estimated TFLite Micro arena (MCU profiles, after export).
        arena_measured: Smallest arena the TFLite Micro interpreter ran the variant in (MCU profiles).
        ops: Operators of the exported graph (after export).
        dtype: The dtype the variant is exported in.
    """

    flops: int
    params: int
    ram_bytes: int
    model_bytes: int
    flash_bytes: int
    latency_ms: float
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    elementwise: int = 0
    latency_terms: tuple[tuple[int, int, int], ...] = ()
    ram_source: str = "torch-trace"
    arena_bytes: int | None = None
    arena_measured: int | None = None
    ops: tuple[str, ...] | None = None
    dtype: str | None = None


def _weight_bytes(ops: list[OpRecord], dtype: str) -> int:
    total = 0
    for op in ops:
        if op.weight_elems and op.kind not in FUSED_KINDS:
            total += op.weight_elems * DTYPE_BYTES[dtype] + op.out_channels * _PER_CHANNEL_BYTES[dtype]
    return total + _FILE_OVERHEAD


def traced_peak_bytes(ops: list[OpRecord], dtype: str) -> int:
    """Largest input + output buffer pair over the executed ops (a sequential arena's high-water mark)."""
    live = [op.in_elems + op.out_elems for op in ops if op.kind not in FUSED_KINDS]
    return max(live, default=0) * DTYPE_BYTES[dtype]


def latency_terms(ops: list[OpRecord], macs: dict[str, int], total_macs: int, dtype: str) -> list[tuple[int, int, int]]:
    """(MACs, bytes moved, output elements) per dispatched op.

    An op's MACs are its own where the trace computed them (``OpRecord.macs``), else its module's in ``macs``. MACs no
    leaf module accounts for (fused attention) form one more op, whose outputs are unknown (0).
    """
    size = DTYPE_BYTES[dtype]
    terms = []
    own = [int(macs.get(op.name, 0)) if op.macs is None else op.macs for op in ops]
    for op, op_macs in zip(ops, own, strict=True):
        if op.kind in FUSED_KINDS:
            continue
        moved = int((op.in_elems + op.out_elems + op.weight_elems) * size)
        terms.append((op_macs, moved, int(op.out_elems)))
    rest = total_macs - sum(own)
    if rest > 0:
        terms.append((int(rest), 0, 0))
    return terms


@dataclass(frozen=True)
class Footprint:
    """What a network's costs are computed from, on any profile: its multiply-adds, its executed ops and its params.

    It depends on the architecture and the input shape only, never on the weights' values, so an untuned adapter
    has the footprint of the tuned one.
    """

    flops: FlopReport
    ops: tuple[OpRecord, ...]
    params: int


def footprint(net: nn.Module, input_shape: tuple[int, ...]) -> Footprint:
    """Count ``net``'s multiply-adds and trace its ops on one input of ``input_shape``."""
    flops = count_flops(net, input_shape)  # first: it puts ``net`` in eval mode, so the trace changes no statistics
    return Footprint(flops, tuple(trace_ops(net, input_shape)), sum(p.numel() for p in net.parameters()))


def cost_on(fp: Footprint, profile: Profile, dtype: str) -> CostReport:
    """What a network of footprint ``fp`` costs on ``profile`` when exported in ``dtype``."""
    ops = list(fp.ops)
    weights = _weight_bytes(ops, dtype)
    ram = traced_peak_bytes(ops, dtype) + profile.runtime_ram + (weights if profile.weights_in_ram else 0)
    terms = latency_terms(ops, fp.flops.by_module, fp.flops.total, dtype)
    median_ms = roofline_ms(terms, profile.latency_model)
    return CostReport(
        flops=fp.flops.total,
        params=fp.params,
        ram_bytes=int(ram),
        model_bytes=int(weights),
        flash_bytes=int(weights + profile.runtime_flash),
        latency_ms=round(median_ms * profile.latency_model.percentile_factor, 4),
        uncounted_ops=fp.flops.uncounted,
        elementwise=fp.flops.elementwise,
        latency_terms=tuple(terms),
        dtype=dtype,
    )


def estimate_cost(net: nn.Module, input_shape: tuple[int, ...], profile: Profile, dtype: str) -> CostReport:
    """Estimate what ``net`` costs on ``profile`` when exported in ``dtype``."""
    return cost_on(footprint(net, input_shape), profile, dtype)
