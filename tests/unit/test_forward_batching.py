"""Forward batches sized from one image's activations: large images run in small batches, the demo in batches of 250,
and CKA holds one block's output for its minibatch, whatever the image size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from restnet_compile.models import BlockSequence, create_model
from restnet_compile.models.batching import BATCH_BYTES, MAX_ROWS, forward_rows, image_bytes, rows_for
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.similarity.cka import _grams, block_grams, cka_matrix, gram
from restnet_compile.stitching.tuning.loop import cut_outputs, pass_rows


class _Recorder(nn.Module):
    """Identity that records the batch size of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return x


def _wide_model(size: int = 224) -> tuple[BlockSequence, _Recorder]:
    """A 3 x size x size model whose first block makes 16 maps at half resolution (a ResNet stem's shape, thinner)."""
    torch.manual_seed(0)
    rec = _Recorder()
    blocks = [
        nn.Sequential(rec, nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 8, 3, stride=2, padding=1), nn.ReLU()),
    ]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    model = BlockSequence(blocks, head, (3, size, size), "wide").eval()
    model.feature_specs()  # its dummy pass, before the recorder counts
    rec.sizes.clear()
    return model, rec


def test_rows_follow_the_largest_activation() -> None:
    model, _ = _wide_model()
    per_image = image_bytes(model.activation_shapes())
    assert per_image == 3 * 16 * 112 * 112 * 4  # the first block's output is larger than the 3 x 224 x 224 input
    rows = forward_rows(model)
    assert 1 <= rows < MAX_ROWS
    assert rows * per_image <= BATCH_BYTES < (rows + 1) * per_image
    assert rows_for(BATCH_BYTES * 10) == 1  # one image larger than the budget still runs, alone


def test_small_images_and_plain_modules_keep_the_full_batch() -> None:
    assert forward_rows(create_model("demo-large-cnn")) == MAX_ROWS
    assert forward_rows(nn.Linear(3, 2)) == MAX_ROWS
    assert forward_rows(nn.Linear(3, 2), most=500) == 500


def test_accuracy_runs_large_images_in_small_batches() -> None:
    model, rec = _wide_model()
    rows = forward_rows(model)
    images = np.random.default_rng(0).random((rows + 5, 3, 224, 224), dtype=np.float32)
    accuracy(model, images, np.zeros(len(images), dtype=np.int64))
    assert rec.sizes == [rows, 5]


def test_block_grams_match_the_whole_batch_bit_for_bit_in_one_chunk() -> None:
    model = create_model("demo-large-cnn").eval()
    x = torch.from_numpy(np.random.default_rng(1).random((24, 1, 28, 28), dtype=np.float32))
    with torch.no_grad():
        whole = _grams(model.block_outputs(x))
    assert torch.equal(block_grams(model, x, 250), whole)
    chunked = block_grams(model, x, 7)  # 7 + 7 + 7 + 3 images: the same Gram matrices to float32 rounding
    assert torch.allclose(chunked, whole, rtol=1e-5, atol=1e-4)


def test_gram_of_chunks_is_the_gram_of_their_rows() -> None:
    rows = torch.from_numpy(np.random.default_rng(2).normal(size=(10, 6)))
    k = gram(list(rows.split(4)))
    expected = rows @ rows.T
    expected.fill_diagonal_(0.0)
    assert torch.allclose(k, expected, rtol=1e-12, atol=1e-12)


def test_cka_matrix_of_large_images_runs_in_chunks() -> None:
    model, rec = _wide_model(size=160)
    rows = forward_rows(model)
    images = np.random.default_rng(3).random((rows + 3, 3, 160, 160), dtype=np.float32)
    matrix = cka_matrix(model, model, [images])
    assert rec.sizes == [rows, 3, rows, 3]  # each model: the minibatch in two chunks
    assert np.allclose(np.diag(matrix), 1.0, atol=1e-6)


def test_prefix_pass_keeps_only_the_cuts() -> None:
    model = create_model("demo-large-cnn").eval()
    x = torch.from_numpy(np.random.default_rng(4).random((5, 1, 28, 28), dtype=np.float32))
    with torch.no_grad():
        every = model.block_outputs(x)
    outs = cut_outputs(model, x, {1, 3}, 4)
    assert sorted(outs) == [1, 3]
    assert all(torch.equal(outs[i], every[i]) for i in outs)
    big, _ = _wide_model()
    assert pass_rows(big, {0, 1}) < forward_rows(big) <= MAX_ROWS


@pytest.mark.parametrize("most", [1, 64])
def test_rows_never_exceed_the_cap(most: int) -> None:
    assert rows_for(1, most=most) == most


@pytest.mark.parametrize("name", ["conv1x1", "conv-bn-relu"])
def test_least_squares_fit_on_resized_features_is_the_same_fit(name: str) -> None:
    from restnet_compile.models import FeatureSpec
    from restnet_compile.stitching.adapters import ADAPTERS

    torch.manual_seed(5)
    src, dst = FeatureSpec("map", (6, 8, 8)), FeatureSpec("map", (4, 4, 4))
    x = torch.randn(20, 6, 8, 8)
    y = torch.relu(torch.nn.functional.avg_pool2d(x[:, :4], 2) + 0.1 * torch.randn(20, 4, 4, 4))
    raw, resized = ADAPTERS.get(name)(src, dst), ADAPTERS.get(name)(src, dst)
    assert raw.least_squares_init(x, y) == resized.least_squares_init(resized.fixed(x), y)
    assert all(torch.equal(a, b) for a, b in zip(raw.state_dict().values(), resized.state_dict().values(), strict=True))
    assert torch.equal(raw(x), resized(x))  # the forward pass still resizes a source map
