"""Real bundles shared by the integration tier, each built once per test session."""

from __future__ import annotations

import pytest

from tests.unit.conftest import cli_in_process  # noqa: F401  (a command run in this process, as the unit tier has it)

# Few candidates and one tuning epoch keep the default run short; "feasible" ships every feasible variant, so
# stitched variants are exported and checked even when the Pareto filter would drop them.
FAST = {"dataset": "mnist5k", "plan": {"max_candidates": 2}, "tune": {"epochs": 1}, "selection": "feasible"}


@pytest.fixture(scope="session")
def phone_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The build cache :func:`phone_bundle` fills (its CKA, tuned adapters and export), for builds of the same
    models and data that differ only after tuning."""
    return tmp_path_factory.mktemp("phone-cache")


@pytest.fixture(scope="session")
def phone_bundle(tmp_path_factory: pytest.TempPathFactory, phone_cache):  # type: ignore[no-untyped-def]
    """A real tflite-int8 bundle of the demo pair for the phone profile, built once per test session.

    It is built uninterrupted with a fresh cache of its own (every stage computed, then stored), so it is also the
    reference that resumed builds (test_build_kill_resume.py) must match byte for byte.
    """
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig

    config = BuildConfig.model_validate({"profile": "phone", **FAST})
    return api.build(config, tmp_path_factory.mktemp("dist"), cache=phone_cache)


@pytest.fixture(scope="session")
def tflm_bundle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real tflm-int8 bundle (one flatbuffer per segment + C arrays) for the MCU profile."""
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig

    cfg = BuildConfig.model_validate({"profile": "mcu", "target": "tflm-int8", **FAST})
    return api.build(cfg, tmp_path_factory.mktemp("tflm"))


@pytest.fixture(scope="session")
def onnx_int8_bundle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real onnx-int8 bundle (per-variant graphs sharing one weights file) for the phone profile."""
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig

    cfg = BuildConfig.model_validate({"profile": "phone", "target": "onnx-int8", **FAST})
    return api.build(cfg, tmp_path_factory.mktemp("onnx-int8"))
