"""Linear CKA with the unbiased minibatch HSIC estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnet_compile.data import load_dataset, make_splits
from restnet_compile.models import create_model
from restnet_compile.similarity import cka_matrix
from restnet_compile.similarity.cka import StreamingCKA, hsic_unbiased


def linear_cka(x: np.ndarray, y: np.ndarray, batch_size: int | None = None) -> float:
    """Linear CKA between two feature sets of the same samples (rows), minibatched if ``batch_size`` is given."""
    n = x.shape[0]
    step = batch_size or n
    acc = StreamingCKA()
    for i in range(0, n, step):
        acc.update([torch.from_numpy(x[i : i + step])], [torch.from_numpy(y[i : i + step])])
    return float(acc.result()[0, 0])


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _orthogonal(rng: np.random.Generator, p: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(p, p)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("batch_size", [None, 50, 100])
def test_self_similarity_is_one(rng: np.random.Generator, batch_size: int | None) -> None:
    x = rng.normal(size=(200, 30))
    assert linear_cka(x, x, batch_size) == pytest.approx(1.0, abs=1e-9)


def test_self_similarity_of_float32_features(rng: np.random.Generator) -> None:
    x = rng.normal(size=(64, 16)).astype(np.float32)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("batch_size", [None, 100])
def test_invariant_to_orthogonal_transform(rng: np.random.Generator, batch_size: int | None) -> None:
    x = rng.normal(size=(300, 20))
    y = x[:, :10] @ rng.normal(size=(10, 15)) + 0.7 * rng.normal(size=(300, 15))
    q = _orthogonal(rng, 20)
    assert np.allclose(q @ q.T, np.eye(20), atol=1e-10)
    base = linear_cka(x, y, batch_size)
    assert 0.2 < base < 0.99  # a non-trivial value, so the invariance says something
    assert linear_cka(x @ q, y, batch_size) == pytest.approx(base, abs=1e-6)
    assert linear_cka(x, y @ _orthogonal(rng, 15), batch_size) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e4])
def test_invariant_to_isotropic_scaling(rng: np.random.Generator, scale: float) -> None:
    x = rng.normal(size=(120, 12))
    y = np.tanh(x @ rng.normal(size=(12, 8))) + 0.3 * rng.normal(size=(120, 8))
    base = linear_cka(x, y, 40)
    assert linear_cka(scale * x, y, 40) == pytest.approx(base, abs=1e-6)
    assert linear_cka(x, scale * y, 40) == pytest.approx(base, abs=1e-6)


def test_not_invariant_to_anisotropic_scaling(rng: np.random.Generator) -> None:
    # guards against an implementation that normalises features per column (that would make CKA meaningless)
    x = rng.normal(size=(300, 10))
    y = x[:, :3] + 0.1 * rng.normal(size=(300, 3))
    stretch = np.ones(10)
    stretch[3:] = 20.0  # inflate the dimensions y does not depend on
    assert linear_cka(x * stretch, y) < linear_cka(x, y) - 0.2


def test_independent_features_score_low(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 20))
    y = rng.normal(size=(400, 20))
    assert abs(linear_cka(x, y)) < 0.05
    assert abs(linear_cka(x, y, 100)) < 0.05


def test_dependent_features_score_higher_than_independent(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 20))
    y = x @ rng.normal(size=(20, 10)) + 0.5 * rng.normal(size=(400, 10))
    assert linear_cka(x, y) > 0.4


def test_minibatch_estimate_agrees_with_full_batch(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 20))
    y = np.tanh(x @ rng.normal(size=(20, 10))) + 0.5 * rng.normal(size=(400, 10))
    full = linear_cka(x, y)
    mini = linear_cka(x, y, 100)
    assert 0.2 < full < 0.95
    assert mini == pytest.approx(full, abs=0.05)


def test_hsic_unbiased_matches_direct_formula(rng: np.random.Generator) -> None:
    n = 12
    a = rng.normal(size=(n, 5))
    b = rng.normal(size=(n, 4)) + a[:, :4]
    k, l = a @ a.T, b @ b.T  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    expected = (
        np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l @ one
    ) / (n * (n - 3))
    got = hsic_unbiased(torch.from_numpy(k)[None], torch.from_numpy(l)[None])
    assert got.shape == (1, 1)
    assert float(got[0, 0]) == pytest.approx(expected, rel=1e-10)


def test_batches_smaller_than_four_are_skipped(rng: np.random.Generator) -> None:
    acc = StreamingCKA()
    acc.update([torch.from_numpy(rng.normal(size=(3, 5)))], [torch.from_numpy(rng.normal(size=(3, 5)))])
    assert acc.batches == 0
    with pytest.raises(ValueError, match="at least one minibatch"):
        acc.result()
    x = rng.normal(size=(103, 8))  # last batch of 3 is dropped, not an error
    assert linear_cka(x, x, 50) == pytest.approx(1.0, abs=1e-9)


@pytest.fixture(scope="module")
def demo_images() -> np.ndarray:
    splits = make_splits(load_dataset("mnist5k"), seed=0)
    return np.ascontiguousarray(splits.calib.images[:64])


@pytest.fixture(scope="module")
def demo_cka(demo_images: np.ndarray) -> np.ndarray:
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    return cka_matrix(large, small, [demo_images[:32], demo_images[32:]])


def test_demo_cka_matrix_shape_and_range(demo_cka: np.ndarray) -> None:
    assert demo_cka.shape == (6, 4)
    assert np.isfinite(demo_cka).all()
    assert (demo_cka >= -0.1).all()
    assert (demo_cka <= 1.0001).all()


def test_demo_cka_matrix_follows_depth(demo_cka: np.ndarray) -> None:
    # the trained pair is most similar at matching relative depth: the first blocks match the first blocks and the
    # last blocks the last ones
    assert int(np.argmax(demo_cka[0])) in (0, 1)
    assert int(np.argmax(demo_cka[-1])) == 3
    assert demo_cka[0, 0] > demo_cka[0, 3]
    assert demo_cka[-1, 3] > demo_cka[-1, 0]


def test_demo_cka_matrix_equals_pairwise_linear_cka(demo_images: np.ndarray, demo_cka: np.ndarray) -> None:
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    x = torch.from_numpy(demo_images)
    with torch.no_grad():
        fl, fs = large.block_outputs(x), small.block_outputs(x)
    for i, j in [(0, 0), (2, 1), (5, 3)]:
        a = fl[i].reshape(64, -1).numpy()
        b = fs[j].reshape(64, -1).numpy()
        assert linear_cka(a, b, 32) == pytest.approx(float(demo_cka[i, j]), abs=1e-6)


def _direct_unbiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Full-batch linear CKA written straight from Song et al. (2012), eq. 5, with explicit sums (no shared code)."""

    def hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
        n = k.shape[0]
        k, l = k.copy(), l.copy()  # noqa: E741
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        term1 = sum(k[i, j] * l[j, i] for i in range(n) for j in range(n))
        term2 = k.sum() * l.sum() / ((n - 1) * (n - 2))
        term3 = 2.0 / (n - 2) * sum(k[i, :].sum() * l[:, i].sum() for i in range(n))
        return (term1 + term2 - term3) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_full_batch_cka_agrees_with_a_direct_computation(rng: np.random.Generator) -> None:
    x = rng.normal(size=(30, 7))
    y = np.tanh(x @ rng.normal(size=(7, 5))) + 0.4 * rng.normal(size=(30, 5))
    direct = _direct_unbiased_cka(x, y)
    assert 0.2 < direct < 0.99
    assert linear_cka(x, y) == pytest.approx(direct, rel=1e-9)


def test_streaming_state_does_not_grow_with_samples(rng: np.random.Generator) -> None:
    acc = StreamingCKA()
    sizes = []
    for _ in range(12):
        a = [torch.from_numpy(rng.normal(size=(16, 5))), torch.from_numpy(rng.normal(size=(16, 3, 2, 2)))]
        b = [torch.from_numpy(rng.normal(size=(16, 4, 3)))]
        acc.update(a, b)
        sizes.append(sum(t.numel() for t in (acc.cross, acc.self_a, acc.self_b)))
    assert acc.batches == 12
    assert set(sizes) == {2 * 1 + 2 + 1}  # a 2x1 cross matrix and the two self terms, whatever the sample count
    assert acc.result().shape == (2, 1)


def test_cnn_transformer_matrix_equals_pairwise_linear_cka(demo_images: np.ndarray) -> None:
    large, vit = create_model("demo-large-cnn"), create_model("demo-vit")
    cka = cka_matrix(large, vit, iter([demo_images[:32], demo_images[32:]]))  # a one-shot iterator: one pass
    assert cka.shape == (6, 4)
    x = torch.from_numpy(demo_images)
    with torch.no_grad():
        fl, fv = large.block_outputs(x), vit.block_outputs(x)
    for i, j in [(0, 0), (3, 2), (5, 3)]:
        expected = linear_cka(fl[i].reshape(64, -1).numpy(), fv[j].reshape(64, -1).numpy(), 32)
        assert float(cka[i, j]) == pytest.approx(expected, abs=1e-6)
