"""What each device profile ships, and why, for the demo pair and a torchvision pair at 224 px (JSON).

The variants of a pair are stitched and tuned once; then every profile costs them with its own latency model and
the dtype of its default target, and decides with its own limits and selection rule (``select.select``). These
are the pre-export decisions; a real build then re-checks RAM, flash and operators on the exported graph.

* demo pair (``demo-large-cnn`` -> ``demo-small-cnn``, 28 px, trained weights): the built-in ``mcu``, ``phone`` and
  ``jetson`` profiles, ``selection: pareto``.
* 224 px pair (ResNet-50 -> MobileNetV3-Large by default, random weights, see ``tv_pair.py``): the same three
  devices with one application budget for all (``--budget``, default 33 ms: one camera frame at 30 fps; the built-in
  budgets are sized for 28 px digits), ``selection: feasible`` (random weights have no accuracy to trade) and no
  adapter tuning (nothing to tune for; costs do not depend on it).

    .venv/bin/python bench/bench_profiles.py [--large resnet50] [--small mobilenet_v3_large] [--budget 33ms]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tv_pair import app_profile, build_config

from restnet_compile._util.torch_state import deterministic
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import load_profile, load_target
from restnet_compile.cost import estimate_cost
from restnet_compile.errors import InfeasibleError
from restnet_compile.pipeline.driver import analyze_and_stitch
from restnet_compile.pipeline.state import Analysis
from restnet_compile.selection.rule import Option, describe_rule, select

DEVICES = ("mcu", "phone", "jetson")


def decide_for(a: Analysis, profile_ref: str | Path, mode: str) -> dict:
    """Cost every variant of ``a`` on one profile and decide what it ships."""
    profile = load_profile(profile_ref)
    target = load_target(profile.target)
    costs = {v.id: estimate_cost(v.module, a.large.input_shape, profile, target.dtype) for v in a.variants}
    cands = [
        Option(v.id, c.latency_ms, c.ram_bytes, c.flash_bytes, v.val_accuracy, c.flops, dtype=c.dtype)
        for v in a.variants
        for c in [costs[v.id]]
    ]
    out: dict = {
        "profile": profile.name,
        "target": target.name,
        "budget_ms": profile.latency.budget,
        "rule": describe_rule(profile, mode),
        "min_latency_gain": profile.selection.min_latency_gain,
        "variants": {
            v.id: {
                "latency_ms": costs[v.id].latency_ms,
                "ram_bytes": costs[v.id].ram_bytes,
                "flash_bytes": costs[v.id].flash_bytes,
                "mflops": round(costs[v.id].flops / 1e6, 2),
            }
            for v in a.variants
        },
    }
    try:
        decisions = select(cands, profile, pareto=mode == "pareto")
    except InfeasibleError as exc:
        return {**out, "shipped": [], "infeasible": str(exc), "dropped": {}}
    out["shipped"] = [d.variant_id for d in decisions if d.selected]
    out["dropped"] = {d.variant_id: list(d.reasons) for d in decisions if not d.selected}
    return out


def study(config: BuildConfig, profiles: dict[str, str | Path], accuracy_note: str | None) -> dict:
    """Stitch and tune ``config``'s pair once, then decide for every profile."""
    t0 = time.perf_counter()
    ref = next(iter(profiles.values()))
    prof = load_profile(ref)
    with deterministic(config.seed, config.threads):
        a = analyze_and_stitch(config, prof, load_target(prof.target), lambda m: print(m, file=sys.stderr))
    stitch_s = time.perf_counter() - t0
    accuracy = {v.id: accuracy_note or {"val": v.val_accuracy, "test": v.test_accuracy} for v in a.variants}
    return {
        "large": config.large,
        "small": config.small,
        "input_shape": list(a.large.input_shape),
        "selection": config.selection,
        "stitch_and_tune_s": round(stitch_s, 1),
        "accuracy": accuracy,
        "profiles": {name: decide_for(a, p, config.selection) for name, p in profiles.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", default="resnet50")
    ap.add_argument("--small", default="mobilenet_v3_large")
    ap.add_argument("--budget", default="33ms")
    ap.add_argument("--skip-demo", action="store_true", help="keep the demo study of an earlier run")
    ap.add_argument("--skip-tv", action="store_true", help="keep the 224 px study of an earlier run")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "profiles.json")
    args = ap.parse_args()
    result: dict = {"machine": platform.machine(), "python": platform.python_version()}
    if not args.skip_demo:
        result["demo"] = study(BuildConfig(), {d: d for d in DEVICES}, None)
    elif args.out.is_file():  # keep the demo study of an earlier run
        result["demo"] = json.loads(args.out.read_text()).get("demo")
    if args.skip_tv:
        result["tv224"] = json.loads(args.out.read_text()).get("tv224") if args.out.is_file() else None
    else:
        with tempfile.TemporaryDirectory(prefix="bench-profiles-") as tmp:
            work = Path(tmp)
            profiles = {d: app_profile(d, args.budget, work) for d in DEVICES}
            config = BuildConfig.model_validate(build_config(args.large, args.small, work, "jetson", epochs=0))
            result["tv224"] = study(config, {"jetson": profiles["jetson"], **profiles}, "random weights")
            result["tv224"]["budget"] = args.budget
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for pair in ("demo", "tv224"):
        for name, p in (result.get(pair) or {}).get("profiles", {}).items():
            print(f"{pair} {name}: ships {', '.join(p['shipped']) or 'nothing'}; {p.get('infeasible', '')}")


if __name__ == "__main__":
    main()
