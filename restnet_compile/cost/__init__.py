"""Cost model: FLOPs, params, memory and latency estimates per variant."""

from restnet_compile.cost.estimate import CostReport, estimate_cost
from restnet_compile.cost.flops import FlopReport, count_flops

__all__ = ["CostReport", "FlopReport", "count_flops", "estimate_cost"]
