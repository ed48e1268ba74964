"""ONNX exporter: one .onnx per variant, all sharing one external-data file that stores each distinct weight once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from torch import nn

from restnet_compile.config.device import Target
from restnet_compile.export.base import EXPORTERS, ExportedVariant, Exporter
from restnet_compile.export.onnx_precision import quantize_int8, to_float16, trtexec_script
from restnet_compile.export.ops import check_ops
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


def externalize(model, shared: SharedWeights, min_bytes: int = 64) -> None:
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
    """``<variant>.onnx`` per variant (fp32, fp16 or static int8 QDQ) + one shared ``weights.bin``."""

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

        shared = SharedWeights()
        result = {}
        calib = calib[: target.calibration_samples]
        for name, module in variants.items():
            path = export_onnx(module, input_shape, work_dir / f"{name}.onnx")
            if target.dtype == "int8":
                quantize_int8(path, work_dir / f"{name}.int8.onnx", calib, work_dir)
                path = work_dir / f"{name}.int8.onnx"
            model = onnx.load(str(path))
            if target.dtype == "fp16":
                model = to_float16(model)
            check_ops({name: [n.op_type for n in model.graph.node]}, target)
            model.graph.name = name
            externalize(model, shared)
            (out_dir / f"{name}.onnx").write_bytes(model.SerializeToString(deterministic=True))
            result[name] = ExportedVariant(f"{name}.onnx", name)
        (out_dir / WEIGHTS_FILE).write_bytes(bytes(shared.blob))
        if target.tensorrt:
            (out_dir / "trtexec.sh").write_text(trtexec_script([f"{name}.onnx" for name in result]))
        return result
