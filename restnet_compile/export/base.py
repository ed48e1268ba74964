"""The exporter interface and its registry (algorithm apart from backend, like NNCF)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from restnet_compile._util.registry import Registry
from restnet_compile.config.device import Target


@dataclass(frozen=True)
class ExportedVariant:
    """Where one variant lives inside the bundle.

    Attributes:
        file: File name relative to the bundle directory.
        signature: Signature (TFLite) or graph name (ONNX) that runs this variant.
    """

    file: str
    signature: str


class Exporter(ABC):
    """Writes every variant of a build into ``out_dir`` for one target format."""

    #: Memory layout of the exported models' image input.
    layout: str = "NCHW"

    @abstractmethod
    def export(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
        out_dir: Path,
        work_dir: Path,
    ) -> dict[str, ExportedVariant]:
        """Export ``variants`` (id -> frozen torch module) into ``out_dir``.

        Args:
            variants: Variant id -> module taking ``N x C x H x W`` float images.
            input_shape: ``(C, H, W)`` of one image.
            calib: Calibration images ``N x C x H x W`` from the build's own data.
            target: The export target.
            out_dir: Bundle directory to write model files into.
            work_dir: Scratch directory for intermediate files.
        """


EXPORTERS: Registry[type[Exporter]] = Registry("exporter")
