"""The MCU bundle in a real TensorFlow Lite Micro firmware on the host: every variant bit-exact with TFLM's Python
interpreter, the model stored once in the ELF, and a second build reusing the TFLM library.

TFLite Micro's sources come from ``$RESTNET_TFLM_DIR`` (``.ci/run`` unpacks them); without it the tests skip.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from restnet_compile import api
from restnet_compile.bundle.manifest import REFERENCE_FILE
from restnet_compile.firmware import FIRMWARE_JSON, TFLM_ENV

pytestmark = pytest.mark.skipif(
    not os.environ.get(TFLM_ENV), reason=f"${TFLM_ENV} is not set: no TensorFlow Lite Micro sources to build against"
)


@pytest.fixture(scope="module")
def host_firmware(tflm_bundle: api.BuildResult, tmp_path_factory: pytest.TempPathFactory) -> api.FirmwareResult:
    out = tmp_path_factory.mktemp("firmware") / "host"
    return api.firmware(tflm_bundle.bundle_dir, None, "host", out, run=True)


def test_every_variant_is_bit_exact_with_tflm_python(tflm_bundle: api.BuildResult, host_firmware) -> None:  # type: ignore[no-untyped-def]
    shipped = [v.id for v in tflm_bundle.manifest.shipped()]
    assert host_firmware.variants is not None
    assert [v.id for v in host_firmware.variants] == shipped and len(shipped) >= 2
    for v in host_firmware.variants:
        assert v.bit_exact and v.max_int8_diff == 0 and v.top1_agreement == 1.0, v
        assert 0 < v.arena_used_bytes <= v.arena_bytes_estimate, v
        # on a 64-bit host the firmware's estimate is the bundle's own (its arena_bytes less the boundary buffer)
        assert v.arena_bytes_estimate + v.boundary_bytes == tflm_bundle.manifest.variant(v.id).arena_bytes, v
    report = json.loads((host_firmware.out_dir / FIRMWARE_JSON).read_text())
    with np.load(tflm_bundle.bundle_dir / REFERENCE_FILE) as ref:
        for row in report["variants"]:  # the dequantized outputs, beside the build's own (LiteRT) outputs
            deployed = ref[f"deployed_{row['id']}"]
            got = np.array(row["outputs"], dtype=np.float32)
            assert got.shape == deployed.shape
            assert np.mean(got.argmax(1) == deployed.argmax(1)) >= 0.9


def test_the_elf_holds_every_model_byte_once(host_firmware) -> None:  # type: ignore[no-untyped-def]
    flash = host_firmware.flash
    assert host_firmware.bundle_model_bytes <= flash["model"] <= 1.02 * host_firmware.bundle_model_bytes
    assert flash["tflm"] > 0 and flash["runtime"] > 0
    assert host_firmware.ram["arena"] > 0 and host_firmware.ram["bss"] >= host_firmware.ram["arena"]


def test_a_second_build_reuses_the_library_and_replaces_the_project(
    tflm_bundle: api.BuildResult, host_firmware
) -> None:  # type: ignore[no-untyped-def]
    again = api.firmware(tflm_bundle.bundle_dir, None, "host", host_firmware.out_dir)
    assert again.library_reused and again.library == host_firmware.library
    assert again.variants is None and again.elf.is_file()
    assert json.loads((again.out_dir / FIRMWARE_JSON).read_text())["variants"] is None
