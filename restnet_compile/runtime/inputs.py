"""A picture file as a bundle's input: the image policy the manifest records (resize, crop, invert, fit the object),
then the input size. numpy and Pillow only: the device runtime imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.images import ImagePolicy, image_to_array
from restnet_compile.bundle.manifest import ImageInfo, InputSpec
from restnet_compile.errors import BadInputError


def image_policy(info: ImageInfo | None) -> ImagePolicy | None:
    """The policy a manifest records, or None where it records none that changes a picture (format 1, or only the
    interpolation of a plain resize)."""
    if info is None or not (info.resize or info.crop or info.invert or info.fit_object):
        return None
    return ImagePolicy(info.resize, info.crop, info.interpolation, info.invert or "never", info.fit_object)


def load_image(path: Path, spec: InputSpec) -> np.ndarray[Any, Any]:
    """Read a PNG/JPEG (or ``.npy``) as the bundle's input: ``C x H x W`` float32 in [0, 1].

    A bundle whose image policy resizes, crops, inverts or fits the object (``input.image``) takes a picture of any
    size through that policy; otherwise a picture of the input's size is read as it is (grey or RGB converted to the
    input's channels) and any other size is refused with what the bundle takes and how to convert.

    Raises:
        BadInputError: no such file, not an image, an unsupported mode, or another size where nothing resizes.
    """
    c, h, w = spec.shape
    if not path.is_file():
        raise BadInputError(f"input {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.shape != (c, h, w):
            raise BadInputError(f"input {path} is {_shape(arr.shape)}; {takes(spec)}; a .npy is fed as it is")
        return np.asarray(np.clip(arr, 0.0, 1.0))
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError):
        raise BadInputError(f"input {path} is not an image PIL can read; give a PNG, a JPEG or a .npy") from None
    if img.mode not in ("L", "RGB"):
        raise BadInputError(f"input {path}: image mode {img.mode} unsupported; valid modes: L (grey), RGB")
    policy = image_policy(spec.image)
    if policy is None and img.size != (w, h):
        chans = 1 if img.mode == "L" else 3
        raise BadInputError(
            f"input {path} is {chans}x{img.size[1]}x{img.size[0]} (CxHxW); {takes(spec)} and records no image "
            f"policy that resizes: convert the picture first, e.g. {convert_hint(spec)}"
        )
    return np.asarray(np.clip(image_to_array(img, (c, h, w), policy or ImagePolicy()), 0.0, 1.0))


def takes(spec: InputSpec) -> str:
    """``the bundle takes 1x28x28 (grey, pixels in [0, 1])``."""
    c, h, w = spec.shape
    return f"the bundle takes {c}x{h}x{w} ({'grey' if c == 1 else 'RGB'}, pixels in [0, 1])"


def convert_hint(spec: InputSpec) -> str:
    """A one-line Pillow call that converts a picture to the bundle's input size and channels."""
    c, h, w = spec.shape
    return f"PIL.Image.open(f).convert('{'L' if c == 1 else 'RGB'}').resize(({w}, {h})).save('in.png')"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) + (" (CxHxW)" if len(shape) == 3 else "")
