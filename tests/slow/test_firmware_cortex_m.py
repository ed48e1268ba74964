"""The demo MCU bundle (``restnet-compile build --profile mcu``) as Cortex-M firmware under QEMU: every variant on a
Cortex-M4 (reference kernels, bit-exact with TFLite Micro's Python interpreter) and on a Cortex-M55 (CMSIS-NN), with
the flash and arena measured there against the estimates. Needs ``$RESTNET_TFLM_DIR``, ``gcc-arm-none-eabi`` and
``qemu-system-arm``.

The bundle's stages come from the session's build cache when ``test_builds_every_profile.py`` built the demo ``mcu``
bundle first (as ``make test-slow`` runs them); the two TFLM libraries come from ``$RESTNET_TFLM_CACHE`` (about ten
CPU-minutes each on a cold cache). QEMU runs the first ``SAMPLES`` reference inputs of every variant."""

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

SAMPLES = 16


@pytest.fixture(scope="module")
def demo_mcu(tmp_path_factory: pytest.TempPathFactory) -> api.BuildResult:
    return api.build(BuildConfig(profile="mcu"), tmp_path_factory.mktemp("mcu"))


def _fits_the_profile(r: api.FirmwareResult, build: api.BuildResult) -> None:
    """Every model byte once in the ELF; flash and RAM within the profile's (the stack is the board's)."""
    assert r.bundle_model_bytes <= r.flash["model"] <= 1.02 * r.bundle_model_bytes
    assert r.flash["total"] <= build.manifest.profile.flash_bytes
    assert r.ram["total"] <= build.manifest.profile.ram_bytes + r.ram["stack"]


def test_cortex_m4_reference_kernels_are_bit_exact_and_measured(demo_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(demo_mcu.bundle_dir, None, "cortex-m4", tmp_path / "m4", run=True, samples=SAMPLES)
    assert r.variants is not None and [v.id for v in r.variants] == [v.id for v in demo_mcu.manifest.shipped()]
    for v in r.variants:
        assert v.bit_exact and v.max_int8_diff == 0, v
        # the estimate for a 32-bit core is enough, and close: within a tenth of what TFLite Micro used
        assert 0.9 * v.arena_bytes_estimate <= v.arena_used_bytes <= v.arena_bytes_estimate, v
        # the bundle's figure, made for the 64-bit interpreter the build measures with, is an upper bound of it
        assert v.arena_bytes_estimate <= int(demo_mcu.manifest.variant(v.id).arena_bytes or 0) - v.boundary_bytes
    assert r.ram["arena"] == max(v.arena_bytes_estimate for v in r.variants)
    _fits_the_profile(r, demo_mcu)


def test_cortex_m55_cmsis_nn_agrees_with_the_reference(demo_mcu: api.BuildResult, tmp_path: Path) -> None:
    r = api.firmware(
        demo_mcu.bundle_dir, None, "cortex-m55", tmp_path / "m55", kernels="cmsis-nn", run=True, samples=SAMPLES
    )
    assert r.variants is not None
    assert [v.id for v in r.variants] == [v.id for v in demo_mcu.manifest.shipped()]
    for v in r.variants:
        assert v.top1_agreement == 1.0, v
        # CMSIS-NN's scratch buffers come on top of the estimate, inside the quarter the main reserves for them
        assert 0.9 * v.arena_bytes_estimate <= v.arena_used_bytes <= r.ram["arena"], v
    assert r.ram["arena"] >= 1.25 * max(v.arena_bytes_estimate for v in r.variants)
    _fits_the_profile(r, demo_mcu)


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
