"""A picture file as a bundle's input: the image policy the manifest records (resize, crop), then the input size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.images import ImagePolicy, image_to_array
from restnet_compile.bundle.manifest import InputSpec
from restnet_compile.errors import BadInputError


def load_image(path: Path, spec: InputSpec) -> np.ndarray[Any, Any]:
    """Read a PNG/JPEG (or ``.npy``) as the bundle's input: ``C x H x W`` float32 in [0, 1].

    A bundle whose image policy resizes or crops (``input.image``) gets any image size through that policy; otherwise
    the image must already have the input's size.

    Raises:
        BadInputError: no such file, not an image, an unsupported mode, or another size where nothing resizes.
    """
    c, h, w = spec.shape
    if not path.is_file():
        raise BadInputError(f"input {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(path)
            img.load()
        except (UnidentifiedImageError, OSError):
            raise BadInputError(f"input {path} is not an image PIL can read") from None
        if img.mode not in ("L", "RGB"):
            raise BadInputError(f"input {path}: image mode {img.mode} unsupported; valid modes: L (grey), RGB")
        info = spec.image
        if info is not None and (info.resize or info.crop):
            policy = ImagePolicy(info.resize, info.crop, info.interpolation)
            return np.clip(image_to_array(img, (c, h, w), policy), 0.0, 1.0)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.shape != (c, h, w):
        raise BadInputError(
            f"input {path} is {arr.shape[0]}x{arr.shape[1]}x{arr.shape[2]} (CxHxW); the bundle takes {c}x{h}x{w}"
        )
    return np.asarray(np.clip(arr, 0.0, 1.0))
