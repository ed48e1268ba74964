"""Test-wide settings (deterministic, quiet, offline) and one shared real bundle."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Few candidates and one tuning epoch keep the default run short; "feasible" ships every feasible variant, so
# stitched variants are exported and checked even when the Pareto filter would drop them.
FAST = {"plan": {"max_candidates": 2}, "tune": {"epochs": 1}, "selection": "feasible"}


@pytest.fixture(scope="session")
def phone_bundle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real tflite-int8 bundle of the demo pair for the phone profile, built once per test session."""
    from restnet_compile import api
    from restnet_compile.buildconfig import BuildConfig

    return api.build(BuildConfig.model_validate({"profile": "phone", **FAST}), tmp_path_factory.mktemp("dist"))
