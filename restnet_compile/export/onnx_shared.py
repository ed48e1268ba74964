"""ONNX exporter: one .onnx per variant, all sharing one external-data file that stores each distinct weight once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from torch import nn

from restnet_compile.config import Target
from restnet_compile.errors import BadInputError
from restnet_compile.export.base import EXPORTERS, ExportedVariant, Exporter
from restnet_compile.export.torch_onnx import export_onnx

WEIGHTS_FILE = "weights.bin"
_ALIGN = 64


class SharedWeights:
    """Appends tensors to one blob, storing identical bytes once."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets: dict[str, tuple[int, int]] = {}

    def add(self, raw: bytes) -> tuple[int, int]:
        """Offset and length of ``raw`` in the blob (appended if new)."""
        key = hashlib.sha256(raw).hexdigest()
        if key not in self.offsets:
            self.blob.extend(b"\0" * (-len(self.blob) % _ALIGN))
            self.offsets[key] = (len(self.blob), len(raw))
            self.blob.extend(raw)
        return self.offsets[key]


def externalize(model, shared: SharedWeights, min_bytes: int = 64) -> None:  # type: ignore[no-untyped-def]
    """Move every initializer of at least ``min_bytes`` into ``shared`` and point the model at it."""
    from onnx import TensorProto, numpy_helper

    for tensor in model.graph.initializer:
        raw = numpy_helper.to_array(tensor).tobytes()
        if len(raw) < min_bytes:
            continue
        offset, length = shared.add(raw)
        tensor.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            tensor.ClearField(field)
        del tensor.external_data[:]
        for key, value in (("location", WEIGHTS_FILE), ("offset", str(offset)), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        tensor.data_location = TensorProto.EXTERNAL


@EXPORTERS.register("onnx")
class OnnxExporter(Exporter):
    """``<variant>.onnx`` per variant + one shared ``weights.bin``."""

    def export(
        self,
        variants: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray,
        target: Target,
        out_dir: Path,
        work_dir: Path,
    ) -> dict[str, ExportedVariant]:
        import onnx

        if target.dtype != "fp32":
            raise BadInputError(f"target {target.name}: exporter onnx writes fp32 models; valid dtypes: fp32")
        shared = SharedWeights()
        result = {}
        for name, module in variants.items():
            model = onnx.load(str(export_onnx(module, input_shape, work_dir / f"{name}.onnx")))
            model.graph.name = name
            externalize(model, shared)
            (out_dir / f"{name}.onnx").write_bytes(model.SerializeToString(deterministic=True))
            result[name] = ExportedVariant(f"{name}.onnx", name)
        (out_dir / WEIGHTS_FILE).write_bytes(bytes(shared.blob))
        return result
