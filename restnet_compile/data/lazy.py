"""Image arrays read on demand: a dataset's images as an array-like whose rows are decoded when indexed.

A :class:`LazyImages` looks like a read-only float32 ``N x C x H x W`` array to the code that reads it in batches:
``len``, ``shape``, ``dtype``, ``ndim``, and indexing by an int, a slice or an array of positions return a new
numpy array of just those rows. ``take(idx)`` is a lazy subset (a split), and ``np.asarray`` reads every row (only
for small splits). Memory then depends on the batch size, not on the dataset's size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

Key = int | slice | np.ndarray | list | tuple


class LazyImages(ABC):
    """Rows of float32 images ``C x H x W`` in ``[0, 1]`` read when indexed."""

    dtype = np.dtype(np.float32)
    ndim = 4
    #: How many rows at the end only the training split gets (a source's own training set behind its held-out set).
    train_only = 0

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, C, H, W)``."""

    @abstractmethod
    def read(self, idx: np.ndarray) -> np.ndarray:
        """The rows at positions ``idx`` (int64, in this order) as a new float32 array."""

    @abstractmethod
    def update_digest(self, h: Any) -> None:
        """Feed what identifies these images (their source and positions) to the hash ``h``."""

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Key) -> np.ndarray:
        if isinstance(key, tuple):
            rows = self[key[0]]
            return rows[key[1:]] if isinstance(key[0], (int, np.integer)) else rows[(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= int(key) < n:
                raise IndexError(f"index {key} is out of bounds for {n} images")
            return self.read(np.asarray([int(key) % n]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self), dtype=np.int64)[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self.read(np.arange(len(self), dtype=np.int64)[idx.astype(np.int64)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read(np.arange(len(self), dtype=np.int64))
        return out if dtype is None else out.astype(dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def take(self, idx: np.ndarray) -> LazyImages:
        """The rows at ``idx`` as a lazy subset (nothing is read)."""
        return IndexedImages(self, np.asarray(idx, dtype=np.int64))

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of at most ``size`` rows, in order."""
        for i in range(0, len(self), size):
            yield self[i : i + size]


class IndexedImages(LazyImages):
    """The rows ``idx`` of a base :class:`LazyImages`, in that order."""

    def __init__(self, base: LazyImages, idx: np.ndarray) -> None:
        self.base, self.idx = base, idx

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.idx), *self.base.shape[1:])

    def read(self, idx: np.ndarray) -> np.ndarray:
        return self.base.read(self.idx[idx])

    def update_digest(self, h: Any) -> None:
        self.base.update_digest(h)
        h.update(b"\0rows\0" + np.ascontiguousarray(self.idx).tobytes())

    def take(self, idx: np.ndarray) -> LazyImages:
        return IndexedImages(self.base, self.idx[np.asarray(idx, dtype=np.int64)])


def take_rows(images: np.ndarray | LazyImages, idx: np.ndarray) -> np.ndarray | LazyImages:
    """``images[idx]``: a copy for an in-memory array (as numpy indexing gives), a lazy subset otherwise."""
    return images.take(idx) if isinstance(images, LazyImages) else images[idx]


def images_digest(h: Any, images: np.ndarray | LazyImages) -> None:
    """Feed ``images`` to the hash ``h``: an in-memory array's dtype, shape and bytes; a lazy one's identity."""
    if isinstance(images, LazyImages):
        h.update(f"\0lazy\0{images.shape}\0".encode())
        images.update_digest(h)
        return
    a = np.ascontiguousarray(images)
    h.update(f"\0{a.dtype.str}\0{a.shape}\0".encode() + a.tobytes())
