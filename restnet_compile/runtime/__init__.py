"""Device-side runtime: open a bundle, pick a variant by budget, run it.

Depends only on numpy and one interpreter (ai-edge-litert, tflite-runtime or onnxruntime); never on torch or
tensorflow, so it is what runs on the device.
"""

from restnet_compile.runtime.bundle import Bundle, BundleError, VariantInfo

__all__ = ["Bundle", "BundleError", "VariantInfo"]
