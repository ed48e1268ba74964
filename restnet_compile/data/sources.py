"""Data sources beyond the built-in datasets: a folder of images and an ``.npz`` of arrays, both read lazily.

* ``folder:PATH`` (or an existing directory): one sub-folder per class, sorted by name; every PNG / JPEG / BMP / GIF
  image inside is read with Pillow, converted to grey or RGB, resized and centre-cropped by the large model's
  preprocessing contract (``resize``, ``crop``, ``interpolation``), then resized to the model's input size. Files are
  listed and checked when the source opens and decoded per batch (:mod:`.folder`, which also says what happens to
  files that cannot be decoded).
* ``npz:PATH`` (or a path ending in ``.npz``): arrays ``images`` (``N x C x H x W``, ``N x H x W x C`` or
  ``N x H x W``; uint8 in 0..255, uint16 in 0..65535, other integers in 0..255 or finite floats in [0, 1]) and
  ``labels`` (``N`` integers in ``[0, num_classes)``); an optional ``num_classes`` scalar. The images are
  memory-mapped, checked and converted per batch (:mod:`.npz`, :mod:`.checks`); ``bad_images: skip`` leaves out the
  images holding a NaN or an infinity.
* ``idx:DIR`` (or a directory holding MNIST-style IDX files): every ``<prefix>-images-idx3-ubyte[.gz]`` beside its
  ``<prefix>-labels-idx1-ubyte[.gz]``, e.g. MNIST or Fashion-MNIST as published; a ``train`` pair is kept for the
  training split when a held-out pair (``t10k`` / ``test``) is there too. Memory-mapped, converted per batch
  (:mod:`.idx`).

Images come out as float32 ``N x C x H x W`` in ``[0, 1]``, read when indexed, in a fixed order (sorted file names),
so splits are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy
from restnet_compile._util.registry import Registry
from restnet_compile.data.folder import BadImages, read_folder_lazy
from restnet_compile.data.idx import is_idx_folder, read_idx_folder
from restnet_compile.data.npz import read_npz_lazy
from restnet_compile.data.opened import Opened, counted, shown
from restnet_compile.errors import BadInputError

Shape = tuple[int, int, int]

DATA_SOURCES: Registry[Callable[..., Opened]] = Registry("data source")


def parse_source(spec: str) -> tuple[str, Path] | None:
    """``("folder"|"npz"|"idx", absolute path)`` for a data spec that names a file source, None for a registered
    dataset name. A directory of IDX files is an ``idx`` source, any other directory a ``folder`` one."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in DATA_SOURCES:
        return scheme, Path(rest).absolute()
    path = Path(spec).absolute()  # from this working directory, wherever the data are read later
    if path.suffix == ".npz":
        return "npz", path
    if path.is_dir():
        return ("idx" if is_idx_folder(path) else "folder"), path
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
    """Open ``images`` and ``labels`` of an ``.npz`` file (no pickles); ``policy`` does not apply; ``bad_images:
    skip`` leaves out images holding a NaN or an infinity.

    Raises:
        BadInputError: missing file, missing arrays, arrays of the wrong shape or type, or labels out of range.
    """
    images, labels, num, skipped = read_npz_lazy(path, skip_nonfinite=bad_images == "skip")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, shape))
        raise BadInputError(f"data file {path}: images are {got}, the models take {want}")
    left = counted(len(skipped), "image")
    notes = (f"left out {left} with non-finite pixels (bad_images: skip): {shown(skipped)}",)
    return Opened(images, labels, num, skipped, notes if skipped else ())


@DATA_SOURCES.register("idx")
def read_idx(
    root: Path, shape: Shape | None, policy: ImagePolicy = DEFAULT_POLICY, bad_images: BadImages = "fail"
) -> Opened:
    """Open the MNIST-style IDX pairs of ``root``, resized to ``shape`` where its images have another height or
    width (``policy``'s filter; resize and crop steps do not apply); ``bad_images`` does not apply.

    Raises:
        BadInputError: no IDX pair, mismatched or truncated files, or images of other channels than ``shape``.
    """
    images, labels, num = read_idx_folder(root, shape, ImagePolicy(interpolation=policy.interpolation))
    return Opened(images, labels, num, (), ())
