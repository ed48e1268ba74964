"""Estimated costs before export against the figures of the exported file, for one network at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restnet_compile.config.device import Profile, load_target
from restnet_compile.cost import estimate_cost
from restnet_compile.export.graph_cost import graph_cost, variant_model
from restnet_compile.export.tflite import TFLiteExporter


@dataclass(frozen=True)
class CostCheck:
    """Size and RAM of one network on a profile: estimated from the torch module, and read from its exported file."""

    name: str
    size_estimated: int
    size_exported: int
    ram_estimated: int
    ram_exported: int

    @property
    def size_error(self) -> float:
        return self.size_estimated / self.size_exported - 1

    @property
    def ram_error(self) -> float:
        return self.ram_estimated / self.ram_exported - 1

    def line(self) -> str:
        return (
            f"{self.name}: size {self.size_estimated:,} B est. / {self.size_exported:,} B exported "
            f"({self.size_error:+.1%}), RAM {self.ram_estimated:,} / {self.ram_exported:,} B ({self.ram_error:+.1%})"
        )


def check_costs(name: str, net: nn.Module, shape: tuple[int, int, int], profile: Profile, work: Path) -> CostCheck:
    """Estimate ``net`` on ``profile`` in int8, export it alone to ``tflite-int8`` and read the exported figures."""
    est = estimate_cost(net, shape, profile, "int8")
    calib = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0)).numpy().astype(np.float32)
    out, scratch = work / "out", work / "scratch"
    out.mkdir(parents=True)
    scratch.mkdir()
    (ev,) = TFLiteExporter().export({"v": net}, shape, calib, load_target("tflite-int8"), out, scratch).values()
    sig = ev.signature or "v"
    cost = graph_cost(variant_model(out / ev.file, sig), sig, profile, measure_tflm=False)
    return CostCheck(name, est.model_bytes, cost.model_bytes, est.ram_bytes, cost.ram_bytes(profile))
