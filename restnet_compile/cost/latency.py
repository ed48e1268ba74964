"""Roofline latency model, its calibration to measured latencies, and the error statistics used to judge it.

Per dispatched op: ``max(MACs / (peak_macs * efficiency * fill), bytes / mem_bandwidth) + op_overhead``; per
interpreter call ``invoke_overhead`` on top (one call per inference, or one per segment of a chained variant).
``fill`` is 1 unless the profile sets ``parallel_outputs`` (GPUs): then an op with fewer output elements than that
keeps only ``outputs / parallel_outputs`` of the device busy, so at batch 1 a small layer costs about its reduction
depth, not its MACs. The sum is the median latency; the profile's ``percentile_factor`` turns it into the latency at
the budget's percentile. Calibration keeps ``mem_bandwidth`` and ``parallel_outputs`` and fits the effective MAC
rate (``efficiency``; ``peak_macs`` is raised only when the device measures faster than the data-sheet peak),
``op_overhead`` and ``invoke_overhead`` to measured medians by least squares on relative error.
No torch here: the per-op terms come from the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from restnet_compile.config.device import LatencyModel

# (multiply-adds, bytes moved[, output elements]) per dispatched op; manifests before the third entry have two
OpTerms = Sequence[tuple[int, ...]]
_MIN_OVERHEAD_MS = 1e-6  # units refuse zero: a fitted overhead of 0 is written as 1 ns


def roofline_ms(terms: OpTerms, model: LatencyModel, efficiency: float | None = None, invokes: int = 1) -> float:
    """Median latency in ms of one inference whose dispatched ops have ``terms``, run as ``invokes`` interpreter
    calls (a variant stored as a chain of segments makes one per segment)."""
    eff = model.efficiency if efficiency is None else efficiency
    macs = np.array([t[0] for t in terms], dtype=np.float64)
    moved = np.array([t[1] for t in terms], dtype=np.float64)
    rate = model.peak_macs * eff * fill_factors(terms, model.parallel_outputs)
    per_op = np.maximum(macs / rate, moved / model.mem_bandwidth) * 1e3 + model.op_overhead
    return float(per_op.sum() + invokes * model.invoke_overhead)


def fill_factors(terms: OpTerms, parallel_outputs: int | None) -> np.ndarray:
    """Fraction of the device each op keeps busy: ``min(1, outputs / parallel_outputs)`` (1 when unknown)."""
    outs = np.array([t[2] if len(t) > 2 and t[2] > 0 else 0 for t in terms], dtype=np.float64)
    if parallel_outputs is None:
        return np.ones(len(terms))
    return np.where(outs > 0, np.minimum(1.0, outs / parallel_outputs), 1.0)


@dataclass(frozen=True)
class Fit:
    """A fitted latency model and how well it fits.

    Attributes:
        model: The calibrated latency model.
        mdape_before: Median absolute percentage error of the profile's model on the measurements.
        mdape_after: The same for the calibrated model (in-sample).
    """

    model: LatencyModel
    mdape_before: float
    mdape_after: float


def mdape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Median of ``|predicted - measured| / measured``."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return float(np.median(np.abs(p - m) / m))


def _fit_overheads(
    compute: np.ndarray, n_ops: np.ndarray, n_invokes: np.ndarray, measured: np.ndarray
) -> tuple[float, float, float]:
    """Non-negative (op_overhead, invoke_overhead) minimising squared relative error; returns them and the loss."""
    w = 1.0 / measured
    a = np.stack([n_ops * w, n_invokes * w], axis=1)
    b = (measured - compute) * w
    best = (0.0, 0.0, float(np.sum(((compute - measured) * w) ** 2)))
    for cols in ((0, 1), (0,), (1,)):
        x, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
        if np.any(x < 0):
            continue
        full = np.zeros(2)
        full[list(cols)] = x
        loss = float(np.sum((a @ full - b) ** 2))
        if loss < best[2]:
            best = (float(full[0]), float(full[1]), loss)
    return best


def fit_latency_model(
    terms: Mapping[str, OpTerms],
    measured_ms: Mapping[str, float],
    model: LatencyModel,
    percentile_factor: float | None,
    invokes: Mapping[str, int] | None = None,
) -> Fit:
    """Fit ``efficiency``, ``op_overhead`` and ``invoke_overhead`` to measured median latencies.

    Args:
        terms: Per-op (MACs, bytes) of every variant that has a measurement.
        measured_ms: Measured median latency per variant.
        model: The profile's current latency model (keeps ``peak_macs`` and ``mem_bandwidth``).
        percentile_factor: Measured percentile / median ratio to store, or None to keep the profile's.
        invokes: Interpreter calls per inference of each variant (default 1: one graph; a chain makes one per
            segment).
    """
    ids = sorted(measured_ms)
    calls = {i: (invokes or {}).get(i, 1) for i in ids}
    meas = np.array([measured_ms[i] for i in ids])
    n_ops = np.array([float(len(terms[i])) for i in ids])
    n_invokes = np.array([float(calls[i]) for i in ids])
    before = [roofline_ms(terms[i], model, invokes=calls[i]) for i in ids]
    best: tuple[float, float, float, float] | None = None
    zero = model.model_copy(update={"op_overhead": 0.0, "invoke_overhead": 0.0})
    for rel in np.geomspace(1e-4, 100.0, 241):  # effective MAC rate relative to the data-sheet peak
        trial = zero.model_copy(update={"peak_macs": model.peak_macs * max(1.0, rel)})
        compute = np.array([roofline_ms(terms[i], trial, float(min(1.0, rel))) for i in ids])
        op_oh, inv_oh, loss = _fit_overheads(compute, n_ops, n_invokes, meas)
        if best is None or loss < best[3]:
            best = (float(rel), op_oh, inv_oh, loss)
    assert best is not None
    update: dict[str, object] = {
        # measured faster than peak * 1: the data-sheet peak was too low, so it is raised (efficiency stays <= 1)
        "peak_macs": model.peak_macs * max(1.0, best[0]),
        "efficiency": round(min(1.0, best[0]), 6),
        "op_overhead": max(best[1], _MIN_OVERHEAD_MS),
        "invoke_overhead": max(best[2], _MIN_OVERHEAD_MS),
    }
    if percentile_factor is not None:
        update["percentile_factor"] = max(1.0, round(percentile_factor, 4))
    fitted = model.model_copy(update=update)
    after = [roofline_ms(terms[i], fitted, invokes=calls[i]) for i in ids]
    return Fit(fitted, mdape(before, meas.tolist()), mdape(after, meas.tolist()))
