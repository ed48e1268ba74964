"""Adapters, stitched networks, candidate planning and adapter-only fine-tuning."""

from restnet_compile.stitching.adapters import ADAPTERS, Adapter
from restnet_compile.stitching.build import StitchedVariant, build_stitched
from restnet_compile.stitching.net import StitchedNet, StitchPoint
from restnet_compile.stitching.plan import Candidate, plan_candidates, rejections

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Candidate",
    "StitchPoint",
    "StitchedNet",
    "StitchedVariant",
    "build_stitched",
    "plan_candidates",
    "rejections",
]
