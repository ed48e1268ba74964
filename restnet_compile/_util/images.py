"""Image files to model input: one implementation for datasets on disk and for the device side's ``run --input``.

Pillow is imported when an image is read, so the device runtime needs it only for image files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values


@dataclass(frozen=True)
class ImagePolicy:
    """How an image file becomes a model input.

    Attributes:
        resize: Resize the shorter side to this many pixels first (None: no such step).
        crop: Then centre-crop a square of this many pixels (None: no crop).
        interpolation: Resize filter: ``nearest``, ``bilinear`` or ``bicubic``.
    """

    resize: int | None = None
    crop: int | None = None
    interpolation: str = "bilinear"


#: No resize or crop: the image is resized straight to the model's input size.
DEFAULT_POLICY = ImagePolicy()


def image_to_array(img: Any, shape: tuple[int, int, int], policy: ImagePolicy = DEFAULT_POLICY) -> np.ndarray:
    """A PIL image as ``C x H x W`` float32 in ``[0, 1]``: grey or RGB, resized and cropped by ``policy``, then
    resized to ``(H, W)`` when it still differs."""
    c, h, w = shape
    flt = _FILTERS[policy.interpolation]
    img = img.convert("L" if c == 1 else "RGB")
    if policy.resize is not None:
        scale = policy.resize / min(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), flt)
    if policy.crop is not None:
        left = max(0, (img.size[0] - policy.crop) // 2)
        top = max(0, (img.size[1] - policy.crop) // 2)
        img = img.crop((left, top, left + policy.crop, top + policy.crop))
    if img.size != (w, h):
        img = img.resize((w, h), flt)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image(path: Path, shape: tuple[int, int, int], policy: ImagePolicy = DEFAULT_POLICY) -> np.ndarray:
    """Read one image file (see :func:`image_to_array`).

    Raises:
        OSError: Pillow cannot read it (callers turn this into their one-line error).
    """
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return image_to_array(img, shape, policy)
