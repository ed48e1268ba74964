"""Latency of every variant of an open bundle on this machine, through the device runtime (any model format).

Rounds are interleaved (one run of every variant per round), so slow drifts of a shared machine fall on every
variant alike, like LiteRT's ``benchmark_model`` but across variants.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from restnet_compile.runtime.bundle import Bundle
from restnet_compile.runtime.timing import time_calls


@dataclass(frozen=True)
class VariantTiming:
    """Run-time distribution of one variant in milliseconds."""

    variant: str
    runs: int
    mean_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict for JSON."""
        return asdict(self)


def benchmark(
    bundle: Bundle, warmup: int = 10, runs: int = 100, variants: list[str] | None = None
) -> list[VariantTiming]:
    """Time each variant on one zero image: ``warmup`` untimed runs, then ``runs`` interleaved timed runs."""
    ids = variants or [v.id for v in bundle.variants]
    image = np.zeros((1, *bundle.manifest.input.shape), dtype=np.float32)
    calls: dict[str, Callable[[], object]] = {vid: functools.partial(bundle.run, image, vid) for vid in ids}
    timings = time_calls(calls, warmup, runs)
    return [
        VariantTiming(vid, t.count, *(round(x / 1e3, 4) for x in (t.avg, t.min, t.p50, t.p90, t.max)))
        for vid, t in timings.items()
    ]
