"""The demo MCU bundle as Cortex-M firmware under QEMU: every variant on a Cortex-M4 (reference kernels, bit-exact
with TFLite Micro's Python interpreter) and on a Cortex-M55 (CMSIS-NN), with the flash and arena measured there
against the manifest's figures. Needs ``$RESTNET_TFLM_DIR``, ``gcc-arm-none-eabi`` and ``qemu-system-arm``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.errors import BadInputError
from restnet_compile.firmware import TFLM_ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get(TFLM_ENV), reason=f"${TFLM_ENV} is not set: no TensorFlow Lite Micro"),
]


@pytest.fixture(scope="module")
def demo_mcu(tmp_path_factory: pytest.TempPathFactory) -> api.BuildResult:
    return api.build(BuildConfig(profile="mcu"), tmp_path_factory.mktemp("mcu"))


def test_cortex_m4_reference_kernels_are_bit_exact_and_measured(demo_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(demo_mcu.bundle_dir, None, "cortex-m4", tmp_path / "m4", run=True)
    assert r.variants is not None and [v.id for v in r.variants] == [v.id for v in demo_mcu.manifest.shipped()]
    for v in r.variants:
        assert v.bit_exact, v
        assert v.arena_used_bytes <= v.arena_bytes_estimate, v  # the estimate is enough to run it
    assert r.bundle_model_bytes <= r.flash["model"] <= 1.02 * r.bundle_model_bytes
    assert r.flash["total"] <= demo_mcu.manifest.profile.flash_bytes
    assert r.ram["total"] <= demo_mcu.manifest.profile.ram_bytes + r.ram["stack"]


def test_cortex_m55_cmsis_nn_agrees_with_the_reference(demo_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(demo_mcu.bundle_dir, None, "cortex-m55", tmp_path / "m55", kernels="cmsis-nn", run=True)
    assert r.variants is not None
    for v in r.variants:
        assert v.top1_agreement == 1.0, v


def test_missing_qemu_is_named(demo_mcu: api.BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arm = Path("/usr/bin/arm-none-eabi-g++")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("g++", "gcc", "ar", "nm", "size"):
        (bin_dir / f"arm-none-eabi-{tool}").symlink_to(arm.parent / f"arm-none-eabi-{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(
        BadInputError, match="qemu-system-arm is not on PATH: install the Debian package qemu-system-arm"
    ):
        api.firmware(demo_mcu.bundle_dir, None, "cortex-m7", tmp_path / "m7", run=True)
