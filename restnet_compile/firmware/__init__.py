"""TensorFlow Lite Micro firmware for ``tflm-int8`` bundles: a project built for the host or a Cortex-M, run natively
or under QEMU, with what it measured (flash, RAM, arena, outputs) in ``firmware.json``.

Above ``bundle`` and ``runtime`` (it reads bundles and reuses the runtime's quantization), below ``pipeline`` and
``api``. Imports nothing heavy at import time; the TFLite Micro Python interpreter only when a run is compared.
"""

from __future__ import annotations

from restnet_compile.firmware.compile_errors import FirmwareBuildError
from restnet_compile.firmware.cpus import CPUS, KERNELS
from restnet_compile.firmware.driver import FIRMWARE_JSON, FirmwareResult, VariantResult, build_firmware
from restnet_compile.firmware.library import CACHE_ENV, default_cache_dir
from restnet_compile.firmware.toolchain import TFLM_ENV

__all__ = [
    "CACHE_ENV",
    "CPUS",
    "FIRMWARE_JSON",
    "KERNELS",
    "TFLM_ENV",
    "FirmwareBuildError",
    "FirmwareResult",
    "VariantResult",
    "build_firmware",
    "default_cache_dir",
]
