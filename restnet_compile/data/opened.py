"""What a data source gives when it opens: lazy images, labels, classes, the files it left out, what it converted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restnet_compile.data.lazy import LazyImages


@dataclass(frozen=True)
class Opened:
    """An opened data source.

    Attributes:
        images: float32 ``N x C x H x W`` in ``[0, 1]``, read (and checked) when indexed.
        labels: int64 ``N``, each in ``[0, num_classes)``.
        num_classes: Number of classes of the source.
        skipped: Images left out (``bad_images: skip``): file paths, or ``FILE[index]`` for arrays.
        notes: One line per thing said once to the user (conversions, files left out), for the log and the report.
    """

    images: LazyImages
    labels: np.ndarray
    num_classes: int
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``1 image``, ``3 images``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def shown(items: tuple[str, ...], first: int = 3) -> str:
    """The first few of ``items``, then ``...`` when there are more."""
    return ", ".join(items[:first]) + (", ..." if len(items) > first else "")
