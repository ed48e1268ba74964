"""Dynamic adaptation: the device switches variants as its latency budget changes, without reloading anything.

A simulated trace drains a battery from 100 % to 10 % while the CPU load of other tasks comes and goes. At every
step the budget is what the device can afford now; the runtime picks the most accurate variant within it and runs one
image. Uses only the device runtime (numpy + one interpreter), like code on the device would.

Usage: ``python examples/dynamic_adaptation.py dist/phone-tflite-int8 [--steps 24]``
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from restnet_compile.runtime import Bundle
from restnet_compile.runtime.verify import REFERENCE_FILE


def budget_trace(steps: int, fastest_ms: float, slowest_ms: float) -> list[tuple[float, float, float]]:
    """(battery, cpu load, budget ms) per step: the budget shrinks with the battery and with the load."""
    trace = []
    for t in range(steps):
        battery = 1.0 - 0.9 * t / max(steps - 1, 1)
        load = 0.5 * max(0.0, math.sin(t * 0.9))  # bursts of other work
        budget = fastest_ms + (slowest_ms - fastest_ms) * battery * (1.0 - load)
        trace.append((battery, load, budget))
    return trace


def main() -> None:
    """Run the trace and print one line per step."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args()
    bundle = Bundle.open(args.bundle)
    with np.load(args.bundle / REFERENCE_FILE) as ref:
        images = ref["inputs"]
    est = [v.latency_ms for v in bundle.variants]
    switches, previous = 0, None
    print(
        f"{'step':>4} {'battery':>7} {'load':>5} {'budget ms':>9}  {'variant':8} {'est ms':>7} "
        f"{'measured ms':>11} class"
    )
    for step, (battery, load, budget) in enumerate(budget_trace(args.steps, min(est), max(est))):
        chosen = bundle.select(latency_ms=budget)
        switches += previous is not None and chosen.id != previous
        previous = chosen.id
        start = time.perf_counter()
        label = int(bundle.run(images[step % len(images)], chosen.id)[0].argmax())
        measured = (time.perf_counter() - start) * 1e3
        print(
            f"{step:4d} {battery:7.0%} {load:5.2f} {budget:9.2f}  {chosen.id:8} {chosen.latency_ms:7.2f} "
            f"{measured:11.3f} {label}"
        )
    print(f"{switches} switches over {args.steps} steps, {len(bundle.variants)} variants, one bundle loaded once")


if __name__ == "__main__":
    main()
