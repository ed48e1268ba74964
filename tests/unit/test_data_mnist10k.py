"""``mnist10k``: mnist5k's splits, plus 5,000 other MNIST digits in the training split only."""

from __future__ import annotations

import numpy as np
import pytest

from restnet_compile.data import Dataset, dataset, load_dataset, make_splits
from restnet_compile.errors import BadInputError


@pytest.mark.parametrize("seed", [0, 3])
def test_mnist10k_keeps_every_mnist5k_split_and_adds_training_digits(seed: int) -> None:
    small, big = make_splits(load_dataset("mnist5k"), seed=seed), make_splits(load_dataset("mnist10k"), seed=seed)
    for name in ("calib", "val", "test"):
        assert np.array_equal(getattr(small, name).images, getattr(big, name).images)
        assert np.array_equal(getattr(small, name).labels, getattr(big, name).labels)
    assert len(big.train) == len(small.train) + 5000
    assert np.array_equal(big.train.images[: len(small.train)], small.train.images)
    assert np.bincount(big.train.labels[len(small.train) :], minlength=10).min() > 300  # every class is there


def test_extra_digits_are_new_real_digits() -> None:
    base, full = load_dataset("mnist5k"), load_dataset("mnist10k")
    extra = full.images[len(base) :]
    assert full.train_only == len(extra) == 5000
    seen = {np.rint(x * 255).astype(np.uint8).tobytes() for x in base.images}
    assert not any(np.rint(x * 255).astype(np.uint8).tobytes() in seen for x in extra)  # disjoint from mnist5k
    assert np.allclose(extra * 255, np.rint(extra * 255), atol=1e-3)  # 256 grey levels, like mnist5k
    assert abs(float(extra.mean()) - float(base.images.mean())) < 0.01  # the same kind of images


def test_corrupt_extra_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "MNIST_EXTRA_SHA256", "0" * 64)
    dataset._mnist10k_cached.cache_clear()  # loaded by earlier tests: read the file again
    with pytest.raises(BadInputError, match=r"dataset mnist10k: file checksum .* does not match the shipped data"):
        load_dataset("mnist10k")
    dataset._mnist10k_cached.cache_clear()  # nothing from the patched read stays cached


def test_train_only_samples_never_reach_the_other_splits() -> None:
    images = np.arange(60, dtype=np.float32).reshape(60, 1, 1, 1)
    ds = Dataset("toy", images, np.zeros(60, np.int64), 1, train_only=20)
    s = make_splits(ds, 1, calib=5, val=5, test=10)
    assert sorted(s.train.images.ravel().tolist())[-20:] == list(range(40, 60))
    held = np.concatenate([s.calib.images, s.val.images, s.test.images]).ravel()
    assert held.max() < 40 and len(s.train) == 20 + 20
    assert s.train.train_only == 0  # a subset is a plain dataset again
    every = make_splits(ds, 1, calib=10, val=10, test=20)  # the training-only samples are the training split
    assert len(every.train) == 20 and every.train.images.min() == 40
    with pytest.raises(BadInputError, match="40 samples, need at least calib"):
        make_splits(ds, 1, calib=10, val=10, test=21)


def test_held_out_test_refuses_mnist10k_whose_held_out_digits_trained_the_demo_models() -> None:
    from restnet_compile.config.build import BuildConfig
    from restnet_compile.models import create_model
    from restnet_compile.pipeline.load import load_splits

    config = BuildConfig.model_validate({"dataset": "mnist10k", "splits": {"held_out": "test", "val": 1000}})
    with pytest.raises(BadInputError, match=r"^splits.held_out: test needs a held-out file .*mnist10k has none"):
        load_splits(config, create_model(config.large))
    with pytest.raises(ValueError, match="held_out"):
        BuildConfig.model_validate({"splits": {"held_out": "val"}})
