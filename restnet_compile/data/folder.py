"""A folder of image files (one sub-folder per class), listed once and decoded per batch.

Loading lists the files in a fixed order (classes and file names sorted), reads each file's bytes once to hash them
(the build cache's key) and to check its header, and keeps no pixels. Indexing decodes just the rows asked for, on a
few threads (Pillow releases the GIL while it decodes and resizes), so memory depends on the batch, not the folder.

Bad files (``bad_images``):

* ``fail`` (default): a file Pillow cannot identify stops the load, naming it; a file whose header is fine but whose
  pixels cannot be decoded (e.g. truncated) stops the build when it is first read, naming it.
* ``skip``: every file is decoded once while loading; those that fail are left out of the dataset (and so of every
  split) and listed in ``Dataset.skipped``.

A file that disappears after loading stops the build when it is read, naming it.

Sent to another process (a Ray worker, maybe on another machine), the images travel as the files' bytes, read once
here: the copy decodes them as this process would and never opens a path.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy, image_to_array
from restnet_compile.data.lazy import LazyImages
from restnet_compile.errors import BadInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
BadImages = Literal["fail", "skip"]
DECODE_THREADS = 4


class FolderImages(LazyImages):
    """Image files decoded to ``shape`` by ``policy`` when indexed."""

    def __init__(
        self,
        root: Path,
        files: list[Path],
        shape: tuple[int, int, int],
        policy: ImagePolicy,
        digest: str,
        blobs: list[bytes] | None = None,
    ) -> None:
        self.root, self.files, self.sample, self.policy, self.digest = root, files, shape, policy, digest
        self.blobs = dict(zip(files, blobs, strict=True)) if blobs is not None else None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), *self.sample)

    def read(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.sample), dtype=np.float32)
        paths = [self.files[int(i)] for i in idx]
        workers = min(DECODE_THREADS, os.cpu_count() or 1, len(paths))
        if workers <= 1:
            for k, p in enumerate(paths):
                out[k] = self._decode(p)
            return out
        with ThreadPoolExecutor(workers) as pool:
            for k, arr in enumerate(pool.map(self._decode, paths)):
                out[k] = arr
        return out

    def _bytes(self, path: Path) -> bytes:
        if self.blobs is not None:
            return self.blobs[path]
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BadInputError(
                f"data folder {self.root}: image {path} vanished during the build; restore it or start again"
            ) from None

    def _decode(self, path: Path) -> np.ndarray:
        data = self._bytes(path)
        try:
            return decode(data, self.sample, self.policy)
        except (OSError, ValueError, SyntaxError) as exc:
            raise BadInputError(
                f"data folder {self.root}: cannot decode image {path}: {exc} (bad_images: skip leaves such files out)"
            ) from None

    def update_digest(self, h: Any) -> None:
        h.update(f"folder\0{self.digest}\0{self.sample}\0{self.policy}".encode())

    def __reduce__(self) -> tuple:  # the files' bytes: another process may not see this folder
        blobs = [self._bytes(p) for p in self.files]
        return (FolderImages, (self.root, self.files, self.sample, self.policy, self.digest, blobs))


def decode(data: bytes, shape: tuple[int, int, int], policy: ImagePolicy = DEFAULT_POLICY) -> np.ndarray:
    """An image file's bytes as ``C x H x W`` float32 in ``[0, 1]`` (see :func:`image_to_array`).

    Raises:
        OSError: Pillow cannot read it.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return image_to_array(img, shape, policy)


def list_images(root: Path) -> tuple[list[Path], list[int], int]:
    """Image files (sorted class folders, sorted names), their labels and the number of classes.

    Raises:
        BadInputError: no such folder, fewer than two class folders, or no images.
    """
    if not root.is_dir():
        raise BadInputError(f"data folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise BadInputError(f"data folder {root}: needs one sub-folder per class (at least 2), found {len(classes)}")
    files, labels = [], []
    for label, folder in enumerate(classes):
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise BadInputError(f"data folder {root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders")
    return files, labels, len(classes)


def _check(path: Path, data: bytes, full: bool, channels: int) -> tuple[int, int]:
    """The image's ``(H, W)``; raises OSError when Pillow cannot identify it (or, ``full``, decode it)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        size = img.size
        if full:
            img.load()
            image_to_array(img, (channels, size[1], size[0]))
    return size[1], size[0]


def read_folder_lazy(
    root: Path, shape: tuple[int, int, int] | None, policy: ImagePolicy = DEFAULT_POLICY, bad: BadImages = "fail"
) -> tuple[FolderImages, np.ndarray, int, tuple[str, ...]]:
    """List and check an image folder: the lazy images, labels, number of classes and the skipped files.

    Without ``shape`` the images keep their own size, which must then be the same for all.

    Raises:
        BadInputError: see :func:`list_images`, an unreadable image (``bad="fail"``), every image unreadable, or
            images of different sizes without ``shape``.
    """
    files, labels, num_classes = list_images(root)
    h = hashlib.sha256()
    kept, kept_labels, skipped, sizes = [], [], [], set()
    for f, label in zip(files, labels, strict=True):
        try:
            data = f.read_bytes()
            sizes.add(_check(f, data, bad == "skip", shape[0] if shape else 3))
        except (OSError, ValueError, SyntaxError) as exc:
            if bad == "fail":
                raise BadInputError(
                    f"data folder {root}: cannot read image {f}: {exc} (bad_images: skip leaves such files out)"
                ) from None
            skipped.append(str(f))
            continue
        h.update(f"{f.relative_to(root).as_posix()}\0{len(data)}\0".encode() + hashlib.sha256(data).digest())
        kept.append(f)
        kept_labels.append(label)
    if not kept:
        raise BadInputError(f"data folder {root}: none of its {len(files)} images can be read")
    if shape is None:
        if len(sizes) > 1:
            raise BadInputError(
                f"data folder {root}: images differ in size; give the model's input shape to resize them"
            )
        shape = (3, *next(iter(sizes)))
    images = FolderImages(root, kept, shape, policy, h.hexdigest())
    return images, np.asarray(kept_labels, dtype=np.int64), num_classes, tuple(skipped)
