"""Adapters, stitched networks, candidate planning and adapter-only fine-tuning."""

from restnet_compile.stitch.adapters import ADAPTERS, Adapter
from restnet_compile.stitch.build import StitchedVariant, build_stitched
from restnet_compile.stitch.finetune import TuneConfig
from restnet_compile.stitch.net import StitchedNet, StitchPoint
from restnet_compile.stitch.plan import Candidate, PlanRule, plan_candidates

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Candidate",
    "PlanRule",
    "StitchPoint",
    "StitchedNet",
    "StitchedVariant",
    "TuneConfig",
    "build_stitched",
    "plan_candidates",
]
