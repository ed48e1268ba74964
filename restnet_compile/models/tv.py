"""Import torchvision on the CPU-only torch build.

torchvision 0.28.0 (the build matching torch 2.13) is a CUDA build: ``import torchvision`` fails with "operator
torchvision::nms does not exist" because its C++ ops are missing. Defining the two op schemas it looks up before the
import is enough for its model definitions to work (``ops.nms`` and ``io.decode_jpeg`` stay unusable).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

_LIBS: list[torch.library.Library] = []  # keep the definitions alive


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, defining the missing op schemas first if needed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError:
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)
    return importlib.import_module("torchvision")
