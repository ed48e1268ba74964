"""Data sources beyond the built-in datasets: a folder of images and an ``.npz`` of arrays.

* ``folder:PATH`` (or an existing directory): one sub-folder per class, sorted by name; every PNG / JPEG / BMP / GIF
  image inside is read with Pillow, converted to grey or RGB, resized and centre-cropped by the large model's
  preprocessing contract (``resize``, ``crop``, ``interpolation``), then resized to the model's input size.
* ``npz:PATH`` (or a path ending in ``.npz``): arrays ``images`` (``N x C x H x W``, ``N x H x W x C`` or
  ``N x H x W``; uint8 in 0..255 or floats in [0, 1]) and ``labels`` (``N`` integers from 0); an optional
  ``num_classes`` scalar.

Images come out as float32 ``N x C x H x W`` in ``[0, 1]`` in a fixed order (sorted file names), so splits are
deterministic.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy, image_to_array, read_image
from restnet_compile._util.registry import Registry
from restnet_compile.errors import BadInputError

Shape = tuple[int, int, int]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}

DATA_SOURCES: Registry[Callable[..., tuple[np.ndarray, np.ndarray, int]]] = Registry("data source")


def parse_source(spec: str) -> tuple[str, Path] | None:
    """``("folder"|"npz", path)`` for a data spec that names a file source, None for a registered dataset name."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in DATA_SOURCES:
        return scheme, Path(rest)
    path = Path(spec)
    if path.suffix == ".npz":
        return "npz", path
    if path.is_dir():
        return "folder", path
    return None


@DATA_SOURCES.register("folder")
def read_folder(
    root: Path, shape: Shape | None, policy: ImagePolicy = DEFAULT_POLICY
) -> tuple[np.ndarray, np.ndarray, int]:
    """Read an image-folder dataset (one sub-folder per class): ``policy``'s resize and crop, then ``shape``.

    Raises:
        BadInputError: no such folder, no class folders, no images, or an unreadable image.
    """
    from PIL import Image

    if not root.is_dir():
        raise BadInputError(f"data folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise BadInputError(f"data folder {root}: needs one sub-folder per class (at least 2), found {len(classes)}")
    c = shape[0] if shape else 3
    images, labels = [], []
    for label, folder in enumerate(classes):
        for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                if shape is not None:
                    arr = read_image(f, shape, policy)
                else:
                    with Image.open(f) as img:
                        arr = image_to_array(img, (c, *img.size[::-1]), policy)
            except OSError as exc:
                raise BadInputError(f"data folder {root}: cannot read image {f}: {exc}") from None
            images.append(arr)
            labels.append(label)
    if not images:
        raise BadInputError(f"data folder {root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders")
    if len({a.shape for a in images}) > 1:
        raise BadInputError(f"data folder {root}: images differ in size; give the model's input shape to resize them")
    return np.stack(images), np.asarray(labels, dtype=np.int64), len(classes)


def _to_nchw(images: np.ndarray, path: Path, shape: Shape | None) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise BadInputError(f"data file {path}: images must be N x C x H x W, N x H x W x C or N x H x W")
    if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.size and (images.min() < 0 or images.max() > 1):
        raise BadInputError(f"data file {path}: float images must lie in [0, 1] (uint8 images are scaled)")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, shape))
        raise BadInputError(f"data file {path}: images are {got}, the models take {want}")
    return images


@DATA_SOURCES.register("npz")
def read_npz(path: Path, shape: Shape | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Read ``images`` and ``labels`` from an ``.npz`` file (no pickles).

    Raises:
        BadInputError: missing file, missing arrays, or arrays of the wrong shape, type or range.
    """
    if not path.is_file():
        raise BadInputError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"data file {path} is not a readable .npz of arrays: {exc}") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise BadInputError(f"data file {path}: missing array {key!r} (has {', '.join(sorted(arrays)) or 'none'})")
    images, labels = _to_nchw(arrays["images"], path, shape), arrays["labels"]
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise BadInputError(f"data file {path}: labels must be {len(images)} integers, one per image")
    if len(labels) and labels.min() < 0:
        raise BadInputError(f"data file {path}: labels must be >= 0")
    num = int(arrays["num_classes"]) if "num_classes" in arrays else int(labels.max(initial=-1)) + 1
    return images, labels.astype(np.int64), num
