"""Linear CKA with the unbiased minibatch HSIC estimator (Nguyen, Raghu & Kornblith, ICLR 2021).

For every minibatch of ``n`` images, each block's features are flattened to an ``n x p`` matrix ``X`` and turned into
a Gram matrix ``K = X X^T`` with its diagonal zeroed. The unbiased HSIC estimator (Song et al. 2012)

    HSIC_1(K, L) = [tr(K L) + 1^T K 1 * 1^T L 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K L 1] / (n (n-3))

is averaged over minibatches, and ``CKA = mean HSIC(K, L) / sqrt(mean HSIC(K, K) * mean HSIC(L, L))``. All
(large block, small block) pairs are accumulated in ONE streaming pass of each model over the data, so memory does not
grow with the number of samples: only the running sums are kept. Within a minibatch the blocks run one at a time on
chunks of images (:func:`~restnet_compile.models.batching.forward_rows`), so only one block's output for the minibatch
is held at once, however large the images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from restnet_compile._util.torch_state import on_device
from restnet_compile.models.batching import forward_rows
from restnet_compile.models.blocks import BlockSequence


def _flat(f: torch.Tensor) -> torch.Tensor:
    x = f.reshape(f.shape[0], -1)
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)


def gram(chunks: list[torch.Tensor]) -> torch.Tensor:
    """The zero-diagonal Gram matrix (float64) of one block's features, given as chunks of the minibatch's rows.

    The product runs in the features' own precision (float32 for models: the costly n x n x p product is then as
    fast as the forward pass's matmuls); every HSIC sum after it runs in float64. One chunk is one product; more
    chunks are multiplied pairwise (the upper blocks, mirrored).
    """
    flats = [_flat(c) for c in chunks]
    if len(flats) == 1:
        k = (flats[0] @ flats[0].T).to(torch.float64)
    else:
        sizes = [f.shape[0] for f in flats]
        k = torch.empty((sum(sizes), sum(sizes)), dtype=torch.float64, device=flats[0].device)
        starts = [sum(sizes[:a]) for a in range(len(sizes))]
        for a, fa in enumerate(flats):
            for b in range(a, len(flats)):
                block = (fa @ flats[b].T).to(torch.float64)
                ra, rb = slice(starts[a], starts[a] + sizes[a]), slice(starts[b], starts[b] + sizes[b])
                k[ra, rb] = block
                k[rb, ra] = block.T
    k.fill_diagonal_(0.0)
    return k


def _grams(feats: list[torch.Tensor]) -> torch.Tensor:
    """Stack the zero-diagonal Gram matrices of each block's flattened features: ``(blocks, n, n)``."""
    return torch.stack([gram([f]) for f in feats])


@torch.no_grad()
def block_grams(model: BlockSequence, x: torch.Tensor, rows: int) -> torch.Tensor:
    """The zero-diagonal Gram matrix of every block's output for the minibatch ``x``: ``(blocks, n, n)``.

    The blocks run one at a time on chunks of ``rows`` images, each chunk's input freed as its output is made, so
    one block's output for the minibatch (and one chunk's working memory) is all that is held.
    """
    chunks = list(x.split(rows))
    grams = []
    for block in model.blocks:
        for c in range(len(chunks)):
            chunks[c] = block(chunks[c])
        grams.append(gram(chunks))
    return torch.stack(grams)


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
    """Unbiased HSIC between every Gram in ``k`` (a, n, n) and every Gram in ``l`` (b, n, n): an (a, b) matrix.

    Both stacks must already have zero diagonals, and ``n`` must be at least 4.
    """
    n = k.shape[-1]
    trace_kl = torch.einsum("aij,bij->ab", k, l)
    sum_k, sum_l = k.sum(dim=(1, 2)), l.sum(dim=(1, 2))
    row_k, row_l = k.sum(dim=2), l.sum(dim=2)
    middle = torch.outer(sum_k, sum_l) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * row_k @ row_l.T
    return (trace_kl + middle - last) / (n * (n - 3))


def _self_hsic(k: torch.Tensor) -> torch.Tensor:
    return torch.stack([hsic_unbiased(k[i : i + 1], k[i : i + 1])[0, 0] for i in range(k.shape[0])])


class StreamingCKA:
    """Accumulates minibatch HSIC sums for every pair of features from two sources."""

    def __init__(self) -> None:
        self.cross: torch.Tensor | None = None
        self.self_a: torch.Tensor | None = None
        self.self_b: torch.Tensor | None = None
        self.batches = 0

    def update(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> None:
        """Add one minibatch (the same images seen by both sources). Batches of fewer than 4 are skipped."""
        if feats_a[0].shape[0] >= 4:
            self.update_grams(_grams(feats_a), _grams(feats_b))

    def update_grams(self, ka: torch.Tensor, kb: torch.Tensor) -> None:
        """Add one minibatch given as its stacked zero-diagonal Gram matrices; fewer than 4 samples are skipped."""
        if ka.shape[-1] < 4:
            return
        cross, sa, sb = hsic_unbiased(ka, kb), _self_hsic(ka), _self_hsic(kb)
        if self.cross is None or self.self_a is None or self.self_b is None:
            self.cross, self.self_a, self.self_b = cross, sa, sb
        else:
            self.cross, self.self_a, self.self_b = self.cross + cross, self.self_a + sa, self.self_b + sb
        self.batches += 1

    def result(self) -> np.ndarray:
        """The CKA matrix ``(len(feats_a), len(feats_b))``."""
        if self.cross is None or self.self_a is None or self.self_b is None:
            raise ValueError("CKA needs at least one minibatch of 4 or more samples")
        denom = torch.sqrt(torch.clamp(torch.outer(self.self_a, self.self_b), min=1e-300))
        return (self.cross / denom).cpu().numpy()


@torch.no_grad()
def cka_matrix(
    large: BlockSequence, small: BlockSequence, batches: Iterable[np.ndarray], device: str | torch.device = "cpu"
) -> np.ndarray:
    """CKA between every block output of ``large`` (rows) and of ``small`` (columns), in one streaming pass.

    Args:
        large: The model whose prefix is kept.
        small: The model whose suffix is appended.
        batches: Minibatches of images ``B x C x H x W`` (use at least 4 per batch; 64-256 is typical).
        device: Where the forward passes and the sums run (the models are moved there and back).
    """
    return cka_matrices([large, small], [(0, 1)], batches, device)[0]


@torch.no_grad()
def cka_matrices(
    models: Sequence[BlockSequence],
    pairs: Sequence[tuple[int, int]],
    batches: Iterable[np.ndarray],
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """The CKA matrix of each pair ``(a, b)`` of ``models`` (rows: blocks of ``models[a]``, columns: of
    ``models[b]``), all in one streaming pass: each model used by some pair runs once per minibatch, and its Gram
    matrices serve every pair it is in (a family's middle anchor serves both of its neighbours).
    """
    used = sorted({m for p in pairs for m in p})
    for m in used:
        models[m].eval()
    accs = [StreamingCKA() for _ in pairs]
    rows = {m: forward_rows(models[m]) for m in used}
    with on_device(tuple(models[m] for m in used), device):
        for images in batches:
            if len(images) < 4:
                continue
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
            grams = {m: block_grams(models[m], x, rows[m]) for m in used}
            for acc, (a, b) in zip(accs, pairs, strict=True):
                acc.update_grams(grams[a], grams[b])
    return [acc.result() for acc in accs]
