"""What data a build accepts: pixels finite and in their documented range, labels the models can output, two classes.

Pixels are checked where they are read (a batch at a time, in the pass that converts them), so a large dataset is
never read once more just to check it. The documented ranges:

* floating-point images: ``[0, 1]``, every value finite;
* ``uint8``: 0..255 (scaled by 1/255); ``uint16``: 0..65535 (scaled by 1/65535); any other integer type holds 8-bit
  values, 0..255 (scaled by 1/255).

Labels are small and read whole: each must lie in ``[0, num_classes)``, and every split needs at least two classes.
Each refusal is one line naming the first offending image (its file or array index) or label (its value and index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from restnet_compile.errors import BadInputError

SKIP_HINT = "bad_images: skip leaves such images out"


def pixel_scale(dtype: np.dtype) -> tuple[float, float]:
    """``(lo, hi)`` of the pixel values of ``dtype``: ``hi`` maps to 1.0 (``(0, 1)`` for floats)."""
    if dtype == np.uint16:
        return 0.0, 65535.0
    if np.issubdtype(dtype, np.integer):
        return 0.0, 255.0
    return 0.0, 1.0


def range_text(dtype: np.dtype) -> str:
    """The documented pixel range of ``dtype`` in words."""
    lo, hi = pixel_scale(dtype)
    if not np.issubdtype(dtype, np.integer):
        return "[0, 1] of float images (integer images are scaled: uint8 0..255, uint16 0..65535)"
    kind = "uint16" if dtype == np.uint16 else "8-bit"
    return f"{lo:.0f}..{hi:.0f} of {kind} images ({dtype.name} array)"


def nonfinite_rows(rows: np.ndarray) -> np.ndarray:
    """Positions (in ``rows``) of the images that hold a NaN or an infinity (none for integer arrays)."""
    if not np.issubdtype(rows.dtype, np.floating) or not rows.size:
        return np.zeros(0, dtype=np.int64)
    flat = rows.reshape(len(rows), -1)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def check_pixels(rows: np.ndarray, positions: np.ndarray, where: str) -> None:
    """Refuse the first image of ``rows`` (raw values; ``positions``: their indices in the source) that holds a
    non-finite pixel or a value outside its dtype's documented range.

    Raises:
        BadInputError: one line naming the image's index and the value.
    """
    if not rows.size:
        return
    if not np.issubdtype(rows.dtype, np.number) or np.issubdtype(rows.dtype, np.complexfloating):
        raise BadInputError(f"{where}: images must be real numbers, not {rows.dtype.name}")
    bad = nonfinite_rows(rows)
    if len(bad):
        value = rows[bad[0]][~np.isfinite(rows[bad[0]])].flat[0]
        raise BadInputError(f"{where}: image {int(positions[bad[0]])} has a non-finite pixel ({value}); {SKIP_HINT}")
    lo, hi = pixel_scale(rows.dtype)
    if rows.min() >= lo and rows.max() <= hi:
        return
    flat = rows.reshape(len(rows), -1)
    first = int(np.flatnonzero(((flat < lo) | (flat > hi)).any(axis=1))[0])
    value = flat[first][(flat[first] < lo) | (flat[first] > hi)][0]
    raise BadInputError(
        f"{where}: image {int(positions[first])} has pixel value {value:g}, outside {range_text(rows.dtype)}"
    )


def check_labels(labels: np.ndarray, num_classes: int, where: str, whose: str = "") -> None:
    """Refuse the first label outside ``[0, num_classes)``, naming it and its index (``whose``: what the classes
    belong to, for the message).

    Raises:
        BadInputError: a label out of range.
    """
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        of = f", the classes of {whose}" if whose else ""
        raise BadInputError(f"{where}: label {int(labels[i])} at index {i} is outside [0, {num_classes}){of}")


def check_classes(splits: Sequence[tuple[str, np.ndarray]], where: str) -> None:
    """Refuse a split (name, labels) whose images all have one class: nothing can be learnt or measured from it.

    Raises:
        BadInputError: the first such split.
    """
    for name, labels in splits:
        present = np.unique(labels)
        if len(labels) and len(present) < 2:
            raise BadInputError(
                f"{where}: the {name} split has only class {int(present[0])} ({len(labels)} images); every split "
                "needs at least 2 classes"
            )
