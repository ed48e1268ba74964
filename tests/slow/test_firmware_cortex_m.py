"""A small MCU bundle as Cortex-M firmware under QEMU: every variant on a Cortex-M4 (reference kernels, bit-exact
with TFLite Micro's Python interpreter) and on a Cortex-M55 (CMSIS-NN), with the flash and arena measured there
against the manifest's figures. Needs ``$RESTNET_TFLM_DIR``, ``gcc-arm-none-eabi`` and ``qemu-system-arm``.

The bundle is the integration tier's small one (few candidates, one tuning epoch, every feasible variant shipped):
on a cold cache the two TFLM libraries are most of this file's time, and the demo bundle's build would double it.
``bench/bench_firmware.py`` runs the demo bundle."""

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


# As tests/integration/conftest.py's tflm_bundle.
SMALL = {"dataset": "mnist5k", "plan": {"max_candidates": 2}, "tune": {"epochs": 1}, "selection": "feasible"}


@pytest.fixture(scope="module")
def small_mcu(tmp_path_factory: pytest.TempPathFactory) -> api.BuildResult:
    config = BuildConfig.model_validate({"profile": "mcu", "target": "tflm-int8", **SMALL})
    return api.build(config, tmp_path_factory.mktemp("mcu"))


def test_cortex_m4_reference_kernels_are_bit_exact_and_measured(small_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(small_mcu.bundle_dir, None, "cortex-m4", tmp_path / "m4", run=True)
    assert r.variants is not None and [v.id for v in r.variants] == [v.id for v in small_mcu.manifest.shipped()]
    for v in r.variants:
        assert v.bit_exact, v
        # the estimate is enough to run it; it is made for the 64-bit host interpreter, whose bookkeeping structs
        # are larger than a 32-bit core's, so a small segment uses less (0.87 of it on the smallest measured)
        assert 0.8 * v.arena_bytes_estimate <= v.arena_used_bytes <= v.arena_bytes_estimate, v
    assert r.bundle_model_bytes <= r.flash["model"] <= 1.02 * r.bundle_model_bytes
    assert r.flash["total"] <= small_mcu.manifest.profile.flash_bytes
    assert r.ram["total"] <= small_mcu.manifest.profile.ram_bytes + r.ram["stack"]


def test_cortex_m55_cmsis_nn_agrees_with_the_reference(small_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(small_mcu.bundle_dir, None, "cortex-m55", tmp_path / "m55", kernels="cmsis-nn", run=True)
    assert r.variants is not None
    assert [v.id for v in r.variants] == [v.id for v in small_mcu.manifest.shipped()]
    for v in r.variants:
        assert v.top1_agreement == 1.0, v
        assert v.arena_used_bytes > 0, v


def test_missing_qemu_is_named(small_mcu: api.BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arm = Path("/usr/bin/arm-none-eabi-g++")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("g++", "gcc", "ar", "nm", "size"):
        (bin_dir / f"arm-none-eabi-{tool}").symlink_to(arm.parent / f"arm-none-eabi-{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(
        BadInputError, match="qemu-system-arm is not on PATH: install the Debian package qemu-system-arm"
    ):
        api.firmware(small_mcu.bundle_dir, None, "cortex-m7", tmp_path / "m7", run=True)
