"""Slow (`make test-slow`): a Fashion-MNIST build from Debian's IDX files (``dataset-fashion-mnist``).

Two of the fixture architectures (a residual CNN and a multi-output CNN) are trained here for a few hundred steps on
the build's own training split, read through ``idx:`` from the original gzipped files, then built for the phone
(tflite-int8). The bundle ships; the anchors' accuracies in the manifest are the test's own evaluation on the same
test images; every shipped variant's int8 accuracy is within the target's rule of its fp32 one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.models import create_model
from restnet_compile.pipeline.load import load_splits
from tests.unit.fixture_models import MNIST, SPECS, raw_model

pytestmark = pytest.mark.slow

FASHION = Path("/usr/share/datasets/fashion-mnist")
PAIR = ("dict_output", "residual")
SPLITS = {"calib": 300, "val": 1000, "test": 2000, "train": 4000}


def _logits(out: object) -> torch.Tensor:
    if isinstance(out, dict):
        return out["logits"]
    return out[0] if isinstance(out, tuple) else out  # type: ignore[return-value]


def _train(key: str, images: np.ndarray, labels: np.ndarray, out: Path, steps: int = 300) -> Path:
    torch.manual_seed(0)
    model = raw_model(key)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(_logits(model(x[idx])), y[idx]).backward()
        opt.step()
    model.eval()
    path = out / f"{key}.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist (installed by .ci/run)")
def test_a_fashion_mnist_build_ships_and_reports_the_models_own_accuracy(tmp_path: Path) -> None:
    base = {
        "large": SPECS[PAIR[0]],
        "small": SPECS[PAIR[1]],
        "input_shape": list(MNIST),
        "num_classes": 10,
        "dataset": f"idx:{FASHION}",
        "splits": SPLITS,
        "plan": {"max_candidates": 2},
        "tune": {"epochs": 1},
        "selection": "feasible",
    }
    splits = load_splits(BuildConfig.model_validate(base), create_model(SPECS[PAIR[0]], input_shape=MNIST))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4000, 1000, 2000)
    train = np.asarray(splits.train.images)
    weights = {
        role: _train(key, train, np.asarray(splits.train.labels), tmp_path)
        for role, key in zip(("large", "small"), PAIR, strict=True)
    }
    config = BuildConfig.model_validate({**base, **{f"{r}_weights": str(p) for r, p in weights.items()}})
    result = api.build(config, tmp_path / "out", cache=False)
    m = result.manifest
    assert m.data.val == 1000 and m.data.test == 2000
    test = np.asarray(splits.test.images)
    for role, key in zip(("large", "small"), PAIR, strict=True):
        model = raw_model(key)
        model.load_state_dict(torch.load(weights[role], weights_only=True))
        with torch.no_grad():
            own = float((_logits(model.eval()(torch.from_numpy(test))).argmax(1).numpy() == splits.test.labels).mean())
        assert m.variant(role).accuracy_fp32 == pytest.approx(own, abs=1e-4), role
        assert 0.6 < own < 0.97, (role, own)  # trained, and far from the ceiling MNIST sits at
    shipped = m.shipped()
    assert shipped and all(v.accuracy_deployed is not None for v in shipped)
    for v in shipped:
        assert v.accuracy_fp32 - v.accuracy_deployed <= 0.01, v.id  # type: ignore[operator]
