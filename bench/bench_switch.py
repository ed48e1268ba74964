"""Switching variants in an open bundle vs loading a separate model file (JSON out).

Builds the demo pair twice with the same config: once as the multi-signature ``tflite-int8`` bundle, once as
``tflm-int8`` (one flatbuffer per variant, the "separate files" case). Then, in one run:

* steady: a variant run back to back;
* switched: the same variant run right after another one in the same interpreter;
* load: creating an interpreter for that variant's separate file, allocating it and getting its runner.

``switch_over_load = max(switched - steady, 0) / load`` (goal <= 0.01): what changing variant costs beyond the
inference itself, relative to loading a model. Times are medians over interleaved repetitions on this machine.

Usage: ``python bench/bench_switch.py [--out bench/results/switch.json] [--reps 200]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from restnet_compile import api
from restnet_compile.config.build import BuildConfig

CONFIG = {"plan": {"max_candidates": 2}, "tune": {"epochs": 1}, "selection": "feasible", "profile": "phone"}


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    """Build, measure, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/switch.json"))
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        multi = api.build(BuildConfig.model_validate(CONFIG), Path(tmp))
        separate = api.build(BuildConfig.model_validate({**CONFIG, "target": "tflm-int8"}), Path(tmp))
        interp = Interpreter(model_path=str(multi.bundle_dir / "variants.tflite"), num_threads=1)
        ids = [v.id for v in multi.manifest.shipped()]
        runners = {vid: interp.get_signature_runner(vid) for vid in ids}
        feed = {
            vid: {"input": np.zeros(r.get_input_details()["input"]["shape"], np.int8)} for vid, r in runners.items()
        }
        for vid in ids:
            runners[vid](**feed[vid])
        result: dict = {"reps": args.reps, "variants": {}}
        for vid in ids:
            other = next(o for o in ids if o != vid)
            steady, switched, load = [], [], []
            for _ in range(args.reps):
                runners[vid](**feed[vid])
                steady.append(_timed(lambda v=vid: runners[v](**feed[v])))
                runners[other](**feed[other])
                switched.append(_timed(lambda v=vid: runners[v](**feed[v])))

                def load_separate(v: str = vid) -> None:
                    sep = Interpreter(model_path=str(separate.bundle_dir / f"{v}.tflite"), num_threads=1)
                    sep.get_signature_runner(v)

                load.append(_timed(load_separate))
            s, w, ld = (float(np.median(x)) for x in (steady, switched, load))
            result["variants"][vid] = {
                "steady_ms": round(s, 4),
                "switched_ms": round(w, 4),
                "load_separate_ms": round(ld, 4),
                "switch_over_load": round(max(w - s, 0.0) / ld, 4),
            }
            print(vid, result["variants"][vid], flush=True)
        result["max_switch_over_load"] = max(v["switch_over_load"] for v in result["variants"].values())
        result["goal_le_0.01"] = result["max_switch_over_load"] <= 0.01
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("max_switch_over_load", "goal_le_0.01")}))


if __name__ == "__main__":
    main()
