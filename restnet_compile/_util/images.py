"""Image files to model input: one implementation for datasets on disk and for the device side's ``run --input``.

Pillow is imported when an image is read, so the device runtime needs it only for image files (numpy + Pillow, no
torch). Besides resize and crop, a policy can prepare a photo of one object the way MNIST was made (LeCun et al.):
light-background pictures inverted to light-on-dark, the object cropped to its bounding box, fitted in a
``fit_object`` square keeping its aspect, and centred by its centre of mass in the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values
_LANCZOS = 1  # PIL.Image.Resampling.LANCZOS: the anti-aliased shrink of a cropped object
_WORK_SIDE = 320  # a larger picture is shrunk to this shorter side before its object is found
INVERT_CHOICES = ("never", "light-background")


@dataclass(frozen=True)
class ImagePolicy:
    """How an image file becomes a model input.

    Attributes:
        resize: Resize the shorter side to this many pixels first (None: no such step).
        crop: Then centre-crop a square of this many pixels (None: no crop).
        interpolation: Resize filter: ``nearest``, ``bilinear`` or ``bicubic``.
        invert: ``light-background``: invert a picture whose border is lighter than mid-grey, so the object is light
            on dark as the model saw in training; ``never``: keep the pixels as they are.
        fit_object: Crop to the object, fit it in a square of this many pixels keeping its aspect and centre it by
            its centre of mass in the input (MNIST: 20 in 28); None: keep the whole picture.
    """

    resize: int | None = None
    crop: int | None = None
    interpolation: str = "bilinear"
    invert: str = "never"
    fit_object: int | None = None

    def describe(self) -> str:
        """The policy in a few words, for messages: ``grey, inverted when light, object fitted in 20 px``."""
        steps = [f"shorter side to {self.resize} px"] if self.resize else []
        steps += [f"centre crop {self.crop} px"] if self.crop else []
        steps += ["inverted when the background is light"] if self.invert == "light-background" else []
        steps += [f"object fitted in {self.fit_object} px and centred by mass"] if self.fit_object else []
        return ", ".join(steps) or f"resized to the input size ({self.interpolation})"


#: No resize or crop: the image is resized straight to the model's input size.
DEFAULT_POLICY = ImagePolicy()


def image_to_array(img: Any, shape: tuple[int, int, int], policy: ImagePolicy = DEFAULT_POLICY) -> np.ndarray:
    """A PIL image as ``C x H x W`` float32 in ``[0, 1]``: grey or RGB, resized and cropped by ``policy``, then
    inverted and fitted by ``policy``, else resized to ``(H, W)`` when it still differs."""
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
    if policy.invert == "light-background" and _border_is_light(img):
        from PIL import ImageOps

        img = ImageOps.invert(img)
    if policy.fit_object is not None:
        return fit_object(img, (c, h, w), policy.fit_object)
    if img.size != (w, h):
        img = img.resize((w, h), flt)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _border_is_light(img: Any) -> bool:
    """Whether the median of the picture's outermost rows and columns (its background) is lighter than mid-grey."""
    g = np.asarray(img.convert("L"), dtype=np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    return float(np.median(border)) > 127.5


def fit_object(img: Any, shape: tuple[int, int, int], box: int) -> np.ndarray:
    """The light object of a dark-background PIL image as a ``C x H x W`` input, as MNIST was made.

    The background is flattened (a minimum filter wider than the strokes, smoothed, estimates uneven lighting; a
    picture is first shrunk to a shorter side of 320 pixels where it is larger), the object is
    the pixels above Otsu's threshold (its bounding box trimmed of the 0.5 % outermost object pixels on each side, so
    specks of noise do not stretch it), its levels are stretched so the stroke reads 1 and the background 0, and the
    crop is shrunk to fit ``box`` pixels keeping its aspect, then placed so its centre of mass is the input's centre.
    """
    c, h, w = shape
    if min(img.size) > _WORK_SIDE:  # a camera's megapixels: the object ends up in ``box`` pixels anyway
        scale = _WORK_SIDE / min(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), _LANCZOS)
    grey = np.asarray(img.convert("L"), np.float32) / 255.0
    r = max(3, min(grey.shape) // 16)  # a window of 2r + 1 pixels: wider than a stroke
    background = _box_blur(_erode(grey, r), r)
    level = np.clip(grey - background, 0, None)
    smooth = _box_blur(level, max(1, r // 8))
    threshold = _otsu(smooth)
    mask = smooth > threshold
    if threshold <= 0 or mask.sum() < 4:  # a blank picture: nothing to fit
        return np.zeros(shape, np.float32)
    top, bottom = _span(mask.sum(axis=1))
    left, right = _span(mask.sum(axis=0))
    peak = float(np.percentile(level[mask], 90))
    floor = threshold / 2
    strength = np.clip((level - floor) / max(peak - floor, 1e-6), 0, 1)[top : bottom + 1, left : right + 1]
    scale = box / max(strength.shape)
    size = (max(1, round(strength.shape[1] * scale)), max(1, round(strength.shape[0] * scale)))
    small = np.clip(_resized(strength, size), 0, 1)
    if c == 3:  # colour models get the picture's own pixels where the grey map finds the object
        rgb = np.asarray(img.convert("RGB"), np.float32)[top : bottom + 1, left : right + 1] / 255.0
        planes = [_resized(np.ascontiguousarray(rgb[..., i]), size) for i in range(3)]
        patch = np.clip(np.stack(planes), 0, 1) * (small > 0)[None]
    else:
        patch = small[None]
    return _place_by_mass(patch, small, h, w)


def _resized(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float plane shrunk (or grown) to ``size`` (width, height) with Lanczos, anti-aliased as MNIST's digits are."""
    from PIL import Image

    return np.asarray(Image.fromarray(plane.astype(np.float32)).resize(size, _LANCZOS))


def _erode(a: np.ndarray, r: int) -> np.ndarray:
    """Minimum over a ``(2r+1)`` square around each pixel (edges repeated), one axis at a time: the background where
    the strokes are narrower than the window."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.pad(a, r, mode="edge")
    for axis in (0, 1):
        out = sliding_window_view(out, 2 * r + 1, axis=axis).min(axis=-1)
    return out


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a ``(2r+1)`` square around each pixel (edges repeated): smooths sensor noise before thresholding."""
    padded = np.pad(a, r, mode="edge")
    for axis in (0, 1):
        cum = np.cumsum(padded, axis=axis, dtype=np.float64)
        cum = np.concatenate([np.zeros_like(cum.take([0], axis=axis)), cum], axis=axis)
        n = padded.shape[axis] - 2 * r
        padded = (cum.take(range(2 * r + 1, 2 * r + 1 + n), axis=axis) - cum.take(range(n), axis=axis)) / (2 * r + 1)
    return padded.astype(np.float32)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in ``[0, 1]`` (256 bins): the split that maximises the between-class variance."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    between = np.nan_to_num(between)
    return float(edges[int(np.argmax(between)) + 1]) if between.max() > 0 else 0.0


def _span(counts: np.ndarray, trim: float = 0.005) -> tuple[int, int]:
    """First and last index holding the object along one axis, the outermost ``trim`` of its pixels left out."""
    cum = np.cumsum(counts) / counts.sum()
    return int(np.searchsorted(cum, trim, side="right")), int(np.searchsorted(cum, 1 - trim, side="left"))


def _place_by_mass(patch: np.ndarray, weight: np.ndarray, h: int, w: int) -> np.ndarray:
    """``patch`` (C x h' x w') on a black ``h x w`` field, its centre of mass (from ``weight``) at the centre."""
    ph, pw = weight.shape
    total = float(weight.sum()) or 1.0
    cy = float((weight.sum(axis=1) * np.arange(ph)).sum()) / total
    cx = float((weight.sum(axis=0) * np.arange(pw)).sum()) / total
    top = min(max(round((h - 1) / 2 - cy), 0), max(h - ph, 0))
    left = min(max(round((w - 1) / 2 - cx), 0), max(w - pw, 0))
    out = np.zeros((patch.shape[0], h, w), np.float32)
    ch, cw = min(ph, h), min(pw, w)
    out[:, top : top + ch, left : left + cw] = patch[:, :ch, :cw]
    return out


def read_image(path: Path, shape: tuple[int, int, int], policy: ImagePolicy = DEFAULT_POLICY) -> np.ndarray:
    """Read one image file (see :func:`image_to_array`).

    Raises:
        OSError: Pillow cannot read it (callers turn this into their one-line error).
    """
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return image_to_array(img, shape, policy)
