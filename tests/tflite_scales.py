"""Test helper: the largest quantization scale of any tensor in a .tflite flatbuffer."""

from __future__ import annotations

import numpy as np


def largest_scale(blob: bytes) -> float:
    """Max over every quantized tensor of every subgraph of its (per-channel max) scale; 0.0 when none is quantized."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(blob, 0)
    scales = [
        float(np.max(t.quantization.scale))
        for sg in model.subgraphs
        for t in sg.tensors
        if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)
    ]
    return max(scales, default=0.0)
