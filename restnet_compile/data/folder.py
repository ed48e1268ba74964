"""A folder of image files (one sub-folder per class), listed once and decoded per batch.

Loading lists the files in a fixed order (classes and file names sorted), reads each file's bytes once to hash them
(the build cache's key) and to check its header, and keeps no pixels. Indexing decodes just the rows asked for, on a
few threads (Pillow releases the GIL while it decodes and resizes), so memory depends on the batch, not the folder.

Bad files (``bad_images``):

* ``fail`` (default): a file Pillow cannot identify stops the load, naming it; a file whose header is fine but whose
  pixels cannot be decoded (e.g. truncated) stops the build when it is first read, naming it.
* ``skip``: every file is decoded once while loading; those that fail are left out of the dataset (and so of every
  split) and listed in ``Dataset.skipped``.

A file that disappears after loading stops the build when it is read, naming it. Files of a class folder that are not
images (by suffix) are left out and counted. Decoded files are 8-bit, so their pixels are always finite and in range.

What loading says once (``Opened.notes``, shown on stderr and in the report): the files left out, and the conversion
of colour images to the grey a one-channel model takes (Pillow's ``L`` mode: the ITU-R 601-2 luma weights
``0.299 R + 0.587 G + 0.114 B``) or of grey images to the three channels of an RGB model.

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
from restnet_compile.data.opened import Opened, counted, shown
from restnet_compile.errors import BadInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
BadImages = Literal["fail", "skip"]
DECODE_THREADS = 4
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
GREY_NOTE = "converted to grey (ITU-R 601 weights)"


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
                f"data folder {self.root}: cannot decode image {path}: {exc}; to leave such files out, build with "
                f"--bad-images skip (config: bad_images: skip)"
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


def list_images(root: Path) -> tuple[list[Path], list[int], int, int]:
    """Image files (sorted class folders, sorted names), their labels, the number of classes and the number of other
    files in the class folders (left out).

    Raises:
        BadInputError: no such folder, fewer than two class folders, or no images.
    """
    if not root.is_dir():
        raise BadInputError(f"data folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise BadInputError(f"data folder {root}: needs one sub-folder per class (at least 2), found {len(classes)}")
    files, labels, others = [], [], 0
    for label, folder in enumerate(classes):
        entries = [p for p in folder.iterdir() if not p.is_dir()]
        found = sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES)
        others += len(entries) - len(found)
        files += found
        labels += [label] * len(found)
    if not files:
        raise BadInputError(f"data folder {root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders")
    return files, labels, len(classes), others


def _check(path: Path, data: bytes, full: bool, channels: int) -> tuple[tuple[int, int], bool]:
    """The image's ``(H, W)`` and whether it is grey; raises OSError when Pillow cannot identify it (or, ``full``,
    decode it)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        size, grey = img.size, img.mode in GREY_MODES
        if full:
            img.load()
            image_to_array(img, (channels, size[1], size[0]))
    return (size[1], size[0]), grey


def conversion_note(colour: int, total: int, channels: int) -> str | None:
    """What converting ``colour`` of ``total`` images to ``channels`` channels does, or None when nothing converts."""
    if channels == 1 and colour:
        which = "images are RGB" if colour == total else f"{colour} of {total} images are RGB"
        return f"{which}, the models take 1 channel: {GREY_NOTE}"
    grey = total - colour
    if channels == 3 and grey:
        which = "images are grey" if grey == total else f"{grey} of {total} images are grey"
        return f"{which}, the models take 3 channels: the grey value is repeated in R, G and B"
    return None


def _notes(others: int, skipped: list[str], conversion: str | None) -> tuple[str, ...]:
    out = []
    if others:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        out.append(f"skipped {counted(others, 'non-image file')} (images are {kinds})")
    if skipped:
        left = counted(len(skipped), "image")
        out.append(f"left out {left} that cannot be decoded (bad_images: skip): {shown(tuple(skipped))}")
    if conversion:
        out.append(conversion)
    return tuple(out)


def read_folder_lazy(
    root: Path, shape: tuple[int, int, int] | None, policy: ImagePolicy = DEFAULT_POLICY, bad: BadImages = "fail"
) -> Opened:
    """List and check an image folder: the lazy images, labels, number of classes, the skipped files and notes.

    Without ``shape`` the images keep their own size, which must then be the same for all.

    Raises:
        BadInputError: see :func:`list_images`, an unreadable image (``bad="fail"``), every image unreadable, or
            images of different sizes without ``shape``.
    """
    files, labels, num_classes, others = list_images(root)
    h = hashlib.sha256()
    kept, kept_labels, skipped, sizes, colour = [], [], [], set(), 0
    for f, label in zip(files, labels, strict=True):
        try:
            data = f.read_bytes()
            size, grey = _check(f, data, bad == "skip", shape[0] if shape else 3)
            sizes.add(size)
            colour += not grey
        except (OSError, ValueError, SyntaxError) as exc:
            if bad == "fail":
                raise BadInputError(
                    f"data folder {root}: cannot read image {f}: {exc}; to leave such files out, build with "
                    f"--bad-images skip (config: bad_images: skip)"
                ) from None
            # named from the data folder, not by its absolute path: the manifest records it
            skipped.append(f"{root.name}/{f.relative_to(root).as_posix()}")
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
        note = None
    else:
        note = conversion_note(colour, len(kept), shape[0])
    images = FolderImages(root, kept, shape, policy, h.hexdigest())
    labels_kept = np.asarray(kept_labels, dtype=np.int64)
    return Opened(images, labels_kept, num_classes, tuple(skipped), _notes(others, skipped, note))
