"""Measure the latency of every signature of a ``.tflite`` with LiteRT on this machine (numpy + ai-edge-litert only).

Runs are interleaved (one run of every signature per round) so that slow drifts of a shared machine (other jobs,
frequency changes) fall on every variant alike. Results are written in the measurements CSV that
``restnet-compile calibrate`` reads (see :data:`CSV_COLUMNS`), in microseconds like LiteRT's ``benchmark_model``.
"""

from __future__ import annotations

import csv
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.atomic import umask_mode
from restnet_compile.errors import BadInputError

# Per-model convention of LiteRT benchmark_model's summary line ("count=50 first=.. curr=.. min=.. max=.. avg=..
# std=..", all in microseconds), one row per variant, plus optional percentiles.
CSV_COLUMNS = ("variant", "count", "first", "curr", "min", "max", "avg", "std", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class Timing:
    """Run-time distribution of one signature, in microseconds."""

    variant: str
    count: int
    first: float
    curr: float
    min: float
    max: float
    avg: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float

    def percentile_us(self, p: int) -> float:
        """The ``p``-th percentile when measured, else the nearest measured one above."""
        for q, v in ((50, self.p50), (90, self.p90), (95, self.p95), (99, self.p99)):
            if p <= q:
                return v
        return self.max


def _zeros(detail: dict[str, Any]) -> np.ndarray[Any, Any]:
    return np.zeros(detail["shape"], dtype=detail["dtype"])


def time_signatures(
    model_path: Path, signatures: Iterable[str] | None = None, warmup: int = 10, runs: int = 100, threads: int = 1
) -> dict[str, Timing]:
    """Time every signature of ``model_path`` on zeros with LiteRT.

    Args:
        model_path: A ``.tflite`` file.
        signatures: Signatures to time (default: all).
        warmup: Untimed runs of each signature before timing.
        runs: Timed runs of each signature (interleaved rounds).
        threads: LiteRT threads.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=threads)
    keys = list(signatures) if signatures is not None else list(interp.get_signature_list())
    calls: dict[str, Callable[[], object]] = {}
    for key in keys:
        runner = interp.get_signature_runner(key)
        feed = {name: _zeros(d) for name, d in runner.get_input_details().items()}
        calls[key] = functools.partial(runner, **feed)
    return time_calls(calls, warmup, runs)


def time_calls(calls: dict[str, Callable[[], object]], warmup: int = 10, runs: int = 100) -> dict[str, Timing]:
    """Time each zero-argument call: the first run, ``warmup`` untimed runs, then ``runs`` interleaved rounds."""
    first: dict[str, float] = {}
    for key, call in calls.items():
        t0 = time.perf_counter()
        call()
        first[key] = (time.perf_counter() - t0) * 1e6
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(runs):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            samples[key].append((time.perf_counter() - t0) * 1e6)
    return {k: _summary(k, first[k], np.array(v)) for k, v in samples.items()}


def _summary(key: str, first: float, us: np.ndarray[Any, Any]) -> Timing:
    p50, p90, p95, p99 = (float(np.percentile(us, q)) for q in (50, 90, 95, 99))
    return Timing(key, len(us), first, float(us[-1]), float(us.min()), float(us.max()), float(us.mean()),
                  float(us.std()), p50, p90, p95, p99)  # fmt: skip


def write_csv(timings: Iterable[Timing], path: Path) -> None:
    """Write ``timings`` as a measurements CSV, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, umask_mode())
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for t in timings:
                writer.writerow([t.variant, t.count] + [f"{getattr(t, c):.2f}" for c in CSV_COLUMNS[2:]])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def measure_bundle(
    bundle_dir: Path,
    signatures: Mapping[str, Sequence[str]],
    csv_out: Path,
    warmup: int = 10,
    runs: int = 100,
    threads: int = 1,
    chained: Sequence[str] = (),
) -> Path:
    """Time the variants of a bundle's ``.tflite`` files on this machine with LiteRT; write the measurements CSV.

    Args:
        bundle_dir: The bundle directory.
        signatures: Model file (relative to the bundle) -> signatures of its variants (``Manifest.signatures_by_file``);
            only ``.tflite`` files are timed.
        csv_out: Where the measurements CSV goes.
        warmup: Untimed runs of each variant first.
        runs: Timed runs of each variant.
        threads: LiteRT threads.
        chained: Variants stored as chains of segments: each timed as the runtime runs it, one interpreter call per
            segment with the requantization between them (on one zero image).

    Raises:
        BadInputError: the bundle has no ``.tflite`` variant.
    """
    by_file = {file: list(sigs) for file, sigs in signatures.items() if file.endswith(".tflite")}
    if not by_file and not chained:
        raise BadInputError(f"bundle {bundle_dir} has no .tflite variants to time on this machine")
    timings = []
    for file, sigs in sorted(by_file.items()):
        timings += list(time_signatures(bundle_dir / file, sigs, warmup, runs, threads).values())
    if chained:
        from restnet_compile.runtime.bundle import Bundle

        bundle = Bundle.open(bundle_dir, threads)
        image = np.zeros((1, *bundle.manifest.input.shape), dtype=np.float32)
        calls: dict[str, Callable[[], object]] = {vid: functools.partial(bundle.run, image, vid) for vid in chained}
        timings += list(time_calls(calls, warmup, runs).values())
    write_csv(timings, csv_out)
    return csv_out
