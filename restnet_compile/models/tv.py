"""Import torchvision on the CPU-only torch build.

torchvision 0.28.0 (the build matching torch 2.13) is a CUDA build: ``import torchvision`` fails with "operator
torchvision::nms does not exist" because its C++ ops are missing. Defining the two op schemas it looks up before the
import is enough for its model definitions to work (``ops.nms`` and ``io.decode_jpeg`` stay unusable).

Every import of torchvision in the project goes through :func:`import_torchvision`, and a user's model file or module
is imported after :func:`shim_for_user_code`, so user code that does ``import torchvision`` needs no shim of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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


TORCHVISION_PREFIXES = ("torchvision:", "torchvision.models:")  # ``torchvision:NAME``, ``torchvision.models:NAME``


def torchvision_arch(spec: str) -> str | None:
    """``NAME`` of ``torchvision:NAME`` or ``torchvision.models:NAME``; None for any other spec."""
    for prefix in TORCHVISION_PREFIXES:
        if spec.startswith(prefix):
            return spec[len(prefix) :]
    return None


def classification_names() -> list[str]:
    """Every classification architecture of ``torchvision.models`` (``resnet18``, ``shufflenet_v2_x0_5``...)."""
    tv = import_torchvision()
    return sorted(tv.models.list_models(module=tv.models))


def shim_for_user_code() -> None:
    """Let code that does ``import torchvision`` itself (a user's model file or module) import it.

    Nothing happens when torchvision is not installed or is already imported.
    """
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is not None:
        import_torchvision()
