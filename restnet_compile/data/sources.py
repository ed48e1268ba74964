"""Data sources beyond the built-in datasets: a folder of images and an ``.npz`` of arrays, both read lazily.

* ``folder:PATH`` (or an existing directory): one sub-folder per class, sorted by name; every PNG / JPEG / BMP / GIF
  image inside is read with Pillow, converted to grey or RGB, resized and centre-cropped by the large model's
  preprocessing contract (``resize``, ``crop``, ``interpolation``), then resized to the model's input size. Files are
  listed and checked when the source opens and decoded per batch (:mod:`.folder`, which also says what happens to
  files that cannot be decoded).
* ``npz:PATH`` (or a path ending in ``.npz``): arrays ``images`` (``N x C x H x W``, ``N x H x W x C`` or
  ``N x H x W``; uint8 in 0..255 or floats in [0, 1]) and ``labels`` (``N`` integers from 0); an optional
  ``num_classes`` scalar. The images are memory-mapped and converted per batch (:mod:`.npz`).

Images come out as float32 ``N x C x H x W`` in ``[0, 1]``, read when indexed, in a fixed order (sorted file names),
so splits are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy
from restnet_compile._util.registry import Registry
from restnet_compile.data.folder import BadImages, read_folder_lazy
from restnet_compile.data.lazy import LazyImages
from restnet_compile.data.npz import read_npz_lazy
from restnet_compile.errors import BadInputError

Shape = tuple[int, int, int]
Opened = tuple[LazyImages, np.ndarray, int, tuple[str, ...]]
"""What a source gives: the lazy images, the labels, the number of classes and the files it left out."""

DATA_SOURCES: Registry[Callable[..., Opened]] = Registry("data source")


def parse_source(spec: str) -> tuple[str, Path] | None:
    """``("folder"|"npz", absolute path)`` for a data spec that names a file source, None for a registered dataset
    name."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in DATA_SOURCES:
        return scheme, Path(rest).absolute()
    path = Path(spec).absolute()  # from this working directory, wherever the data are read later
    if path.suffix == ".npz":
        return "npz", path
    if path.is_dir():
        return "folder", path
    return None


@DATA_SOURCES.register("folder")
def read_folder(
    root: Path, shape: Shape | None, policy: ImagePolicy = DEFAULT_POLICY, bad_images: BadImages = "fail"
) -> Opened:
    """Open an image-folder dataset (one sub-folder per class): ``policy``'s resize and crop, then ``shape``.

    Raises:
        BadInputError: no such folder, no class folders, no images, or an unreadable image (``bad_images="fail"``).
    """
    return read_folder_lazy(root, shape, policy, bad_images)


@DATA_SOURCES.register("npz")
def read_npz(
    path: Path, shape: Shape | None, policy: ImagePolicy = DEFAULT_POLICY, bad_images: BadImages = "fail"
) -> Opened:
    """Open ``images`` and ``labels`` of an ``.npz`` file (no pickles); ``policy`` and ``bad_images`` do not apply.

    Raises:
        BadInputError: missing file, missing arrays, or arrays of the wrong shape, type or range.
    """
    images, labels, num = read_npz_lazy(path)
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, shape))
        raise BadInputError(f"data file {path}: images are {got}, the models take {want}")
    return images, labels, num, ()
