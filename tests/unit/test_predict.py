"""``run`` / ``api.predict`` report steady latency, with the first run (the interpreter's set-up) shown apart."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from restnet_compile import api
from restnet_compile.errors import BadInputError
from restnet_compile.runtime import Bundle
from tests.manifests import sample_manifest

SETUP_S, STEADY_S = 0.05, 0.001


class SlowFirstBackend:
    """An interpreter that pays a set-up cost on its first run, like LiteRT preparing its delegates."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, file: str, signature: str, x: np.ndarray) -> np.ndarray:
        time.sleep(SETUP_S if self.calls == 0 else STEADY_S)
        self.calls += 1
        logits = np.zeros((1, 10), np.float32)
        logits[0, 3] = 1.0
        return logits


@pytest.fixture()
def fake_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SlowFirstBackend:
    backend = SlowFirstBackend()
    bundle = Bundle(tmp_path, sample_manifest(), backend)
    monkeypatch.setattr(api, "open_bundle", lambda _path: bundle)
    return backend


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1, 28, 28), np.float32))
    return path


def test_prediction_reports_steady_latency_and_the_first_run_apart(
    fake_bundle: SlowFirstBackend, tmp_path: Path
) -> None:
    result = api.predict(tmp_path, _image(tmp_path), variant="small", warmup=2, runs=7)
    assert result.variant == "small" and result.label == 3 and len(result.scores) == 10
    assert fake_bundle.calls == 1 + 2 + 7
    assert result.runs == 7
    assert result.first_run_ms >= 1e3 * SETUP_S
    assert 1e3 * STEADY_S <= result.latency_ms < 1e3 * SETUP_S / 2, "the steady figure excludes the set-up"


def test_prediction_within_a_budget_and_bad_run_counts(fake_bundle: SlowFirstBackend, tmp_path: Path) -> None:
    fastest = min(sample_manifest().shipped(), key=lambda v: v.latency_ms)
    assert api.predict(tmp_path, _image(tmp_path), budget_ms=fastest.latency_ms, runs=3).variant == fastest.id
    with pytest.raises(BadInputError, match="runs >= 1"):
        api.predict(tmp_path, _image(tmp_path), variant="small", runs=0)
