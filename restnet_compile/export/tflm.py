"""TensorFlow Lite Micro exporter: one full-int8 ``.tflite`` per segment and one flash image of them in C.

TFLM's interpreter runs subgraph 0 only, so a multi-signature file cannot share weights there. Segments do: every
block range the shipped variants need is one single-subgraph model, stored and quantized once (``export.segments``),
and each variant runs as a chain of them with one arena (``restnet_compile.firmware``). ``model_data.cc/.h`` hold every
segment as a 16-byte aligned C array, a segment table and a variant table with each variant's budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from restnet_compile.bundle.segment_info import Segment
from restnet_compile.config.device import Target
from restnet_compile.errors import BadInputError
from restnet_compile.export.base import EXPORTERS, Conversion, ExportedVariant, Exporter, VariantBudget
from restnet_compile.export.c_array import render_c_arrays
from restnet_compile.export.segments import segment_order
from restnet_compile.export.tflite_segments import export_segments, segment_conversions


@EXPORTERS.register("tflm")
class TFLMExporter(Exporter):
    """One full-int8 ``seg-<id>.tflite`` per segment, every variant a chain of them, plus ``model_data.cc/.h``."""

    layout = "NHWC"

    def export(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
        out_dir: Path,
        work_dir: Path,
    ) -> dict[str, ExportedVariant]:
        if target.dtype != "int8":
            raise BadInputError(f"target {target.name}: exporter tflm writes full-int8 models; valid dtypes: int8")
        return export_segments(dict(variants), calib, target, out_dir, work_dir, signatures=False)[0]

    def conversions(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
    ) -> list[Conversion]:
        """Every segment's onnx2tf conversion."""
        return segment_conversions(dict(variants), calib, target) if target.dtype == "int8" else []

    def finish(self, out_dir: Path, exported: dict[str, ExportedVariant], budgets: list[VariantBudget]) -> None:
        segments = {s.id: s for ev in exported.values() for s in ev.chain}
        models = {s.id: (out_dir / s.file).read_bytes() for s in sorted(segments.values(), key=_segment_order)}
        header, source = render_c_arrays(models, segments, budgets)
        (out_dir / "model_data.h").write_text(header)
        (out_dir / "model_data.cc").write_text(source)


def _segment_order(s: Segment) -> tuple[int, int, str]:
    return (segment_order(s.model), s.start, s.id)
