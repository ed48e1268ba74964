"""TFLite exporter: every variant in ONE .tflite, one signature per variant (or, for a target with ``segments``,
every block range once: ``export.tflite_segments``).

Path: PyTorch -> ONNX (dynamo) -> onnx2tf SavedModel per variant (``export.tflite_convert``) -> one ``tf.Module``
with one ``tf.function`` per variant saved with ``signatures={...}`` ->
``TFLiteConverter.from_saved_model(signature_keys=...)``. The converter stores byte-identical constants once, so
blocks shared by several variants (the large prefix, the small suffix) are not duplicated. Full-integer quantization
is calibrated per signature on the build's own calibration images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.config.device import Target
from restnet_compile.export.base import EXPORTERS, Conversion, ExportedVariant, Exporter
from restnet_compile.export.ops import check_ops, tflite_ops
from restnet_compile.export.tflite_convert import (
    convert_calibrated,
    signature_function,
    tensorflow_quiet,
    to_saved_model,
)
from restnet_compile.export.tflite_rewrite import compact
from restnet_compile.export.tflite_segments import export_segments, segment_conversions

BUNDLE_FILE = "variants.tflite"


def _combine(saved: dict[str, Path], input_shape: tuple[int, int, int], out: Path) -> list[str]:
    """Save one SavedModel whose signatures are the variants (NHWC float input, logits output)."""
    import tensorflow as tf

    c, h, w = input_shape
    root = tf.Module()
    signatures: dict[str, Any] = {}
    for name, path in saved.items():
        loaded = tf.saved_model.load(str(path))
        setattr(root, f"model_{len(signatures)}", loaded)
        fn = signature_function(loaded.signatures["serving_default"], (1, h, w, c))
        signatures[name] = fn.get_concrete_function()
    tf.saved_model.save(root, str(out), signatures=signatures)
    return list(signatures)


def _convert(saved_model: Path, keys: list[str], calib: np.ndarray, target: Target) -> bytes:
    nhwc = np.ascontiguousarray(calib[: target.calibration_samples].transpose(0, 2, 3, 1))
    return convert_calibrated(saved_model, {key: nhwc for key in keys}, target)


@EXPORTERS.register("tflite")
class TFLiteExporter(Exporter):
    """One ``variants.tflite`` holding every variant as a signature (compacted, ``export.tflite_rewrite``: the
    quantization tables and constants that several signatures repeat are stored once), or with ``segments`` in the
    target every block
    range once, every variant a chain of them: one ``seg-<id>.tflite`` per segment, or with ``segment_file: one``
    every segment a signature of ``segments.tflite`` (``export.tflite_segments``)."""

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
        if target.segments:
            return export_segments(dict(variants), calib, target, out_dir, work_dir)[0]
        with quiet_native_output():
            combined, keys = saved_model_with_signatures(variants, input_shape, work_dir)
            model = _convert(combined, keys, calib, target)
        check_ops(tflite_ops(model), target)
        (out_dir / BUNDLE_FILE).write_bytes(compact(model))  # every signature's equal tables stored once
        return {name: ExportedVariant(BUNDLE_FILE, name) for name in keys}

    def conversions(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
    ) -> list[Conversion]:
        """Every variant's (or with ``segments``, every segment's) onnx2tf conversion."""
        if target.segments:
            return segment_conversions(dict(variants), calib, target)
        return [Conversion(name, m, input_shape) for name, m in variants.items()]


def saved_model_with_signatures(
    variants: dict[str, nn.Module], input_shape: tuple[int, int, int], work_dir: Path
) -> tuple[Path, list[str]]:
    """Convert each variant with onnx2tf and join them in one SavedModel with one signature per variant."""
    combined = work_dir / "combined_saved_model"
    with tensorflow_quiet():
        saved = {name: to_saved_model(m, input_shape, name, work_dir) for name, m in variants.items()}
        return combined, _combine(saved, input_shape, combined)
