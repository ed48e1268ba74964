"""Two fixture models, each split by tracing, stitched by the build's own stitching functions on tiny data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile.config.build import PlanSettings, TuneSettings
from restnet_compile.data import Dataset, make_splits
from restnet_compile.models import create_model
from restnet_compile.similarity import cka_matrix
from restnet_compile.stitching import build_stitched, plan_candidates
from restnet_compile.stitching.build import prefix_cache
from tests.unit.fixture_models import MNIST, SPECS


@pytest.mark.parametrize(("large", "small"), [("residual", "digit_cnn"), ("timm", "dict_output")])
def test_two_fixture_models_stitch(
    large: str, small: str, checkpoints: dict[str, Path], digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    front = create_model(SPECS[large], weights=checkpoints[large], input_shape=MNIST, num_classes=10)
    back = create_model(SPECS[small], weights=checkpoints[small], input_shape=MNIST, num_classes=10)
    images, labels = digits[0].numpy(), digits[1].numpy()
    splits = make_splits(Dataset("digits256", images, labels, 10), seed=0, calib=48, val=32, test=32)
    cka = cka_matrix(front, back, (splits.calib.images[k : k + 16] for k in range(0, 48, 16)))
    assert cka.shape == (len(front.blocks), len(back.blocks)) and np.isfinite(cka).all()
    rule = PlanSettings(max_candidates=1)
    candidates = plan_candidates(cka, front.feature_specs(), back.feature_specs(), rule)
    assert len(candidates) == 1
    c = candidates[0]
    cache = prefix_cache(front, front, candidates, splits)
    tune = TuneSettings(epochs=1, match_epochs=1, batch_size=32)
    variant = build_stitched(front, back, c, splits, tune, seed=0, cache=cache, teacher=front)
    net = variant.net
    assert list(net.prefix) == list(front.blocks[: c.point.front_block + 1])  # the fixture's own traced blocks
    assert list(net.suffix) == list(back.blocks[c.point.back_block + 1 :]) and net.head is back.head
    x = torch.from_numpy(splits.test.images)
    with torch.no_grad():
        logits = net(x)
        want = back.head(back.run_blocks(net.adapter(net.prefix(x)), c.point.back_block + 1, len(back.blocks)))
    assert logits.shape == (32, 10) and torch.allclose(logits, want, atol=1e-6)
    assert 0.0 <= variant.tune.val_accuracy <= 1.0
