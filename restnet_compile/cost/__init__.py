"""Cost model: FLOPs, params, memory and latency estimates per variant."""

from restnet_compile.cost.estimate import CostReport, Footprint, cost_on, estimate_cost, footprint
from restnet_compile.cost.flops import FlopReport, count_flops

__all__ = ["CostReport", "FlopReport", "Footprint", "cost_on", "count_flops", "estimate_cost", "footprint"]
