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

import torch
from torch import nn

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile, Target
from restnet_compile.cost import CostReport, cost_on, footprint
from restnet_compile.errors import InfeasibleError
from restnet_compile.models import BlockSequence
from restnet_compile.pipeline.family import Family
from restnet_compile.pipeline.state import Screen
from restnet_compile.selection.rule import Option, limit_violations, require_feasible
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from restnet_compile.stitching.adapters import choose_adapter
from restnet_compile.stitching.plan import stitch_pairs


def possible_stitches(
    config: BuildConfig, large: BlockSequence, small: BlockSequence, tags: tuple[str, str] = ("L", "S")
) -> list[StitchedNet]:
    """An untuned network for every pair the plan could pick, with the adapter tuning would give it; ``tags``: the
    letters of ``large`` and ``small`` in variant ids."""
    front, back = (small, large) if config.plan.order == "small-large" else (large, small)
    tags = (tags[1], tags[0]) if config.plan.order == "small-large" else tags
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


def screen(config: BuildConfig, devices: list[tuple[Profile, Target]], family: Family) -> Screen:
    """Cost every anchor and every possible stitch of every pair on each of ``devices``; decide what each can run."""
    nets: dict[str, nn.Module] = {a.id: a.model for a in family.anchors}
    pair_of: dict[str, str] = {}
    for pair in family.pairs:
        for n in possible_stitches(config, pair.big.model, pair.little.model, (pair.big.tag, pair.little.tag)):
            nets[n.point.variant_id] = n
            pair_of[n.point.variant_id] = pair.name
    points = {vid: (n.point.front_block, n.point.back_block) for vid, n in nets.items() if isinstance(n, StitchedNet)}
    shape = family.anchors[0].model.input_shape
    measured = {a.id: a.footprint for a in family.anchors if a.footprint is not None}
    prints = {vid: measured.get(vid) or footprint(net, shape) for vid, net in nets.items()}
    costs, runnable, failures, misses, anchors_fit = {}, {}, {}, {}, {}
    for profile, target in devices:
        mine = {vid: cost_on(fp, profile, target.dtype) for vid, fp in prints.items()}
        options = [_option(vid, c) for vid, c in mine.items()]
        costs[profile.name] = mine
        over = {o.variant_id: limit_violations(o, profile) for o in options if o.variant_id in points}
        anchors_fit[profile.name] = frozenset(
            o.variant_id for o in options if o.variant_id not in points and not limit_violations(o, profile)
        )
        runnable[profile.name] = {
            p.name: frozenset(points[v] for v, why in over.items() if not why and pair_of[v] == p.name)
            for p in family.pairs
        }
        misses[profile.name] = {
            p.name: {points[v]: ", ".join(why) for v, why in over.items() if why and pair_of[v] == p.name}
            for p in family.pairs
        }
        try:
            require_feasible(options, profile)
        except InfeasibleError as exc:
            failures[profile.name] = exc
    return Screen(tuple(points), costs, runnable, failures, misses, anchors_fit)
