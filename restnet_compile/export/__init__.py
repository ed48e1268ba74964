"""Exporters (one per target format), the segments they share, exported-graph costs and parity checks.

Backends (onnx2tf, tensorflow, onnxruntime) are imported lazily inside the exporter that needs them, so importing
this package stays cheap; importing it registers every exporter.
"""

from restnet_compile.export import onnx_shared, tflite, tflm
from restnet_compile.export.base import EXPORTERS, ExportedVariant, Exporter

__all__ = ["EXPORTERS", "ExportedVariant", "Exporter", "onnx_shared", "tflite", "tflm"]
