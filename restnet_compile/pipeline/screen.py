"""Stage 1b: what each requested profile can run, from costs alone, before any CKA or tuning.

Right after the models load, FLOPs, params, RAM, flash and estimated latency are computed for both anchors and for
every possible stitch: each front cut x back block the plan allows (``stitching.plan.stitch_pairs``: depth band,
suffix length, a registered adapter), with the adapter tuning would build there. Costs depend on shapes only, so
the untuned adapter costs what the tuned one will. Each requested profile then learns which pairs it can run:

* a profile that nothing fits (no anchor, no stitch) fails here, within seconds, with selection's closest-miss
  message (``InfeasibleError``, exit code 3);
* the plan picks among the pairs a profile can run (condition (d) of the rule), so a candidate that no requested
  profile can run is never tuned;
* the costs stage reuses these costs instead of measuring the same architectures again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport, cost_on, footprint
from restnet_compile.errors import InfeasibleError
from restnet_compile.models import BlockSequence
from restnet_compile.selection.rule import Option, limit_violations, require_feasible
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from restnet_compile.stitching.adapters import choose_adapter
from restnet_compile.stitching.plan import stitch_pairs


@dataclass(frozen=True)
class Screen:
    """Costs of every variant that could be built, per profile, and what each profile can run.

    Attributes:
        stitches: Ids of every stitch the plan could pick (``L1-S0``...).
        costs: Profile name -> variant id (``large``, ``small``, ``L1-S0``...) -> estimated cost on that profile.
        runnable: Profile name -> the (front cut, back block) pairs whose stitch fits that profile.
        failures: Profile name -> why nothing fits it (the profiles that fit something are absent).
        misses: Profile name -> (front cut, back block) -> the limits of that profile the pair's stitch misses.
    """

    stitches: tuple[str, ...]
    costs: dict[str, dict[str, CostReport]]
    runnable: dict[str, frozenset[tuple[int, int]]]
    failures: dict[str, InfeasibleError]
    misses: dict[str, dict[tuple[int, int], str]] = dataclasses.field(default_factory=dict)


def possible_stitches(config: BuildConfig, large: BlockSequence, small: BlockSequence) -> list[StitchedNet]:
    """An untuned network for every pair the plan could pick, with the adapter tuning would give it."""
    front, back = (small, large) if config.plan.order == "small-large" else (large, small)
    tags = ("S", "L") if config.plan.order == "small-large" else ("L", "S")
    specs_f, specs_b = front.feature_specs(), back.feature_specs()
    nets = []
    with torch.random.fork_rng(devices=[]):  # adapters initialise from the global stream: leave it where it was
        for i, j, planned in stitch_pairs(specs_f, specs_b, config.plan):
            name = choose_adapter(config.tune.adapter, planned, specs_f[i], specs_b[j])
            adapter = ADAPTERS.get(name)(specs_f[i], specs_b[j])
            nets.append(StitchedNet(front, back, StitchPoint(i, j, *tags), adapter).eval())
    return nets


def _option(vid: str, cost: CostReport) -> Option:
    return Option(vid, cost.latency_ms, cost.ram_bytes, cost.flash_bytes, 0.0, cost.flops, dtype=cost.dtype)


def screen(
    config: BuildConfig, devices: list[tuple[Profile, Target]], large: BlockSequence, small: BlockSequence
) -> Screen:
    """Cost both anchors and every possible stitch on each of ``devices`` and decide what each can run."""
    nets = {"large": large, "small": small} | {n.point.variant_id: n for n in possible_stitches(config, large, small)}
    points = {vid: (n.point.front_block, n.point.back_block) for vid, n in nets.items() if isinstance(n, StitchedNet)}
    prints = {vid: footprint(net, large.input_shape) for vid, net in nets.items()}
    costs, runnable, failures, misses = {}, {}, {}, {}
    for profile, target in devices:
        mine = {vid: cost_on(fp, profile, target.dtype) for vid, fp in prints.items()}
        options = [_option(vid, c) for vid, c in mine.items()]
        costs[profile.name] = mine
        over = {points[o.variant_id]: limit_violations(o, profile) for o in options if o.variant_id in points}
        runnable[profile.name] = frozenset(p for p, why in over.items() if not why)
        misses[profile.name] = {p: ", ".join(why) for p, why in over.items() if why}
        try:
            require_feasible(options, profile)
        except InfeasibleError as exc:
            failures[profile.name] = exc
    return Screen(tuple(points), costs, runnable, failures, misses)
