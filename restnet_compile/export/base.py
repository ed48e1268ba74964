"""The exporter interface and its registry (algorithm apart from backend, like NNCF)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from restnet_compile._util.registry import Registry
from restnet_compile.bundle.segment_info import Segment
from restnet_compile.config.device import Target


@dataclass(frozen=True)
class ExportedVariant:
    """Where one variant lives inside the bundle.

    Attributes:
        file: File name relative to the bundle directory (None for a variant that runs as a chain of segments, one
            interpreter call each).
        signature: Signature (TFLite) or graph name (ONNX) that runs this variant in one call (None for a chain).
        chain: The segments the variant runs, in order (empty: the variant is one graph), with their costs unset
            (``bundle.segment_info.Segment``). With a signature too, the signature's graph calls them (the blocks
            are stored in the segments, once).
    """

    file: str | None
    signature: str | None
    chain: tuple[Segment, ...] = ()


def boundary_bytes(chain: tuple[Segment, ...], alignment: int = 16) -> int:
    """The buffer that carries a chain's tensors between segments: its largest inner boundary, aligned (0 for a
    chain of one segment)."""
    largest = max((s.output.nbytes for s in chain[:-1]), default=0)
    return -(-largest // alignment) * alignment


@dataclass(frozen=True)
class Conversion:
    """One model conversion an export runs that no other conversion of it depends on: ``module`` taking one input of
    ``input_shape`` (no batch dimension), converted under ``name`` (``export.tflite_convert.convert``)."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class VariantBudget:
    """What a device needs to pick a shipped variant: its chain, arena, estimated latency and accuracy."""

    id: str
    chain: tuple[Segment, ...]
    arena_bytes: int
    latency_ms: float
    accuracy: float


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

    def conversions(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
    ) -> list[Conversion]:
        """The conversions ``export`` of the same arguments would run, each independent of the others, so that a
        caller may run them beforehand in parallel (elsewhere) and hand their results to ``export`` through
        ``export.tflite_convert.prebuilt``; none by default."""
        return []

    def finish(  # noqa: B027 - a hook most exporters do not need
        self, out_dir: Path, exported: dict[str, ExportedVariant], budgets: list[VariantBudget]
    ) -> None:
        """Write the files that need the exported graphs' costs (by default none).

        Args:
            out_dir: The bundle directory ``export`` wrote into.
            exported: What ``export`` returned.
            budgets: The shipped variants' costs, read from their exported graphs, in manifest order.
        """


EXPORTERS: Registry[type[Exporter]] = Registry("exporter")
