"""MNIST-style IDX files (``train-images-idx3-ubyte[.gz]`` beside ``train-labels-idx1-ubyte[.gz]``), read lazily.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one big-endian uint32 per
dimension, then the values in C order. Images are ``idx3`` uint8 ``N x H x W`` (or ``idx4`` ``N x H x W x C``);
labels ``idx1`` uint8 ``N``. MNIST, Fashion-MNIST and KMNIST ship in this format (Debian's
``dataset-fashion-mnist`` installs the gzipped originals in ``/usr/share/datasets/fashion-mnist``).

A folder holds one or more pairs, each named by the prefix before ``-images-``: ``train`` and ``t10k`` (or
``test``). The images are memory-mapped: an uncompressed file in place, a gzipped one after it is decompressed, in
chunks, into a temporary file (removed when the images are no longer used, or at exit; a killed process's by the
next build, see :mod:`restnet_compile._util.tempdirs`). Only the rows of a batch are converted to float32 in
[0, 1], and resized (as image files are, with the large model's interpolation) where the models take another size;
grey images are repeated over three channels for models that take RGB (as grey image files are read).

Where the folder holds a ``train`` pair and a held-out pair (``t10k`` / ``test``), the held-out images come first
and the training images are marked training-only (:attr:`~restnet_compile.data.lazy.LazyImages.train_only`): the
build's calibration, validation and test splits are drawn from the held-out images alone, so a model trained on the
official training set is never measured on images it was trained on.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy, image_to_array
from restnet_compile._util.tempdirs import make_owned_dir
from restnet_compile.data.lazy import LazyImages
from restnet_compile.data.npz import to_nchw_float
from restnet_compile.errors import BadInputError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGES = re.compile(r"^(?P<prefix>.+?)[-_.]images[-_.]idx(?P<dims>[34])[-_.]ubyte(?P<gz>\.gz)?$")
_HELD_OUT = ("t10k", "test")
#: Prefix of the folder a gzipped file is decompressed into; a killed build's is removed by the next build.
IDX_PREFIX = "restnet-idx-"
_TRAIN = ("train",)


def is_idx_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding at least one IDX images file."""
    return path.is_dir() and any(_IMAGES.match(p.name) for p in path.iterdir() if p.is_file())


def _header(f: Any, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    magic = f.read(4)
    if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] not in _TYPES or magic[3] == 0:
        raise BadInputError(f"data file {path}: not an IDX file (bad magic number {magic.hex() or 'none'})")
    dims = f.read(4 * magic[3])
    if len(dims) != 4 * magic[3]:
        raise BadInputError(f"data file {path}: IDX header ends early")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return np.dtype(_TYPES[magic[2]]), shape, 4 + 4 * magic[3]


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _check_size(path: Path, available: int, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    need = offset + int(np.prod(shape)) * dtype.itemsize
    if available < need:
        raise BadInputError(f"data file {path}: holds {available} bytes, its IDX header promises {need}")


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def map_idx(path: Path) -> tuple[np.memmap, Path | None]:
    """The array of an IDX file, memory-mapped (a gzipped file first decompressed into a temporary file, whose
    folder is returned for removal).

    Raises:
        BadInputError: not an IDX file, a truncated one, or a broken gzip stream.
    """
    try:
        if path.suffix != ".gz":
            with path.open("rb") as f:
                dtype, shape, offset = _header(f, path)
            _check_size(path, path.stat().st_size, offset, dtype, shape)
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape), None
        folder = make_owned_dir(Path(tempfile.gettempdir()), IDX_PREFIX)
        raw = folder / path.stem
        try:
            with gzip.open(path, "rb") as src, raw.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
            with raw.open("rb") as f:
                dtype, shape, offset = _header(f, path)
            _check_size(path, raw.stat().st_size, offset, dtype, shape)
            return np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape), folder
        except BaseException:
            _remove(folder)
            raise
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BadInputError(f"data file {path} cannot be read as IDX: {exc}") from None


def read_labels(path: Path) -> np.ndarray:
    """The labels of an ``idx1`` file as int64.

    Raises:
        BadInputError: not a one-dimensional IDX file of integers >= 0.
    """
    try:
        with _open(path) as f:
            dtype, shape, _ = _header(f, path)
            if len(shape) != 1 or dtype.kind not in "iu":
                raise BadInputError(f"data file {path}: labels must be a 1-D IDX file of integers, got {shape}")
            data = f.read(shape[0] * dtype.itemsize)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BadInputError(f"data file {path} cannot be read as IDX: {exc}") from None
    if len(data) != shape[0] * dtype.itemsize:
        raise BadInputError(f"data file {path}: holds fewer labels than its IDX header promises ({shape[0]})")
    labels = np.frombuffer(data, dtype=dtype).astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise BadInputError(f"data file {path}: labels must be >= 0")
    return labels


class IdxImages(LazyImages):
    """The rows of one or more memory-mapped IDX image arrays, one after the other, as float32 NCHW in [0, 1]."""

    def __init__(
        self,
        parts: list[np.memmap],
        digest: str,
        temps: list[Path],
        train_only: int = 0,
        resize_to: tuple[int, int, int] | None = None,
        policy: ImagePolicy = DEFAULT_POLICY,
    ) -> None:
        self.parts, self.digest, self.train_only, self.policy = parts, digest, train_only, policy
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        n, first = int(self.starts[-1]), parts[0].shape
        self.stored = (1, *first[1:]) if len(first) == 3 else (first[3], first[1], first[2])
        self.resize_to = resize_to if resize_to is not None and tuple(resize_to) != self.stored else None
        self._shape = (n, *(self.resize_to or self.stored))
        for temp in temps:
            weakref.finalize(self, _remove, temp)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def read(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        part = np.searchsorted(self.starts, idx, side="right") - 1
        rows = np.empty((len(idx), *self.parts[0].shape[1:]), dtype=self.parts[0].dtype)
        for k in np.unique(part):
            sel = part == k
            rows[sel] = self.parts[k][idx[sel] - self.starts[k]]
        if rows.dtype != np.uint8:  # other IDX value types: read as numbers in [0, 1]
            rows = rows.astype(np.float32)
        if self.resize_to is None:
            return to_nchw_float(rows)
        if self.resize_to[1:] == self.stored[1:]:  # grey repeated over three channels only
            return np.ascontiguousarray(np.repeat(to_nchw_float(rows), self.resize_to[0], axis=1))
        from PIL import Image

        return np.stack([image_to_array(Image.fromarray(r.squeeze()), self.resize_to, self.policy) for r in rows])

    def update_digest(self, h: Any) -> None:
        h.update(f"idx\0{self.digest}\0{self.resize_to}\0{self.policy}".encode())


def _cannot_resize(images: IdxImages, dtype: np.dtype, shape: tuple[int, int, int] | None) -> str | None:
    """Why ``images`` cannot become ``shape`` (None: they can, or are already)."""
    if shape is None or images.resize_to is None:
        return None
    if images.stored[0] != shape[0] and not (images.stored[0] == 1 and shape[0] == 3):
        return f"images have {images.stored[0]} channel(s), the models take {shape[0]}"
    if dtype != np.uint8 and images.resize_to[1:] != images.stored[1:]:
        return f"only uint8 images can be resized to the models' {shape[1]}x{shape[2]} input"
    return None


def _pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Prefix -> (images file, labels file) of every IDX pair in ``root``."""
    pairs = {}
    for p in sorted(root.iterdir()):
        m = _IMAGES.match(p.name)
        if not m or not p.is_file():
            continue
        prefix = m["prefix"]
        candidates = [root / f"{prefix}-labels-idx1-ubyte{ext}" for ext in (".gz", "")]
        labels = next((c for c in candidates if c.is_file()), None)
        if labels is None:
            raise BadInputError(f"data folder {root}: {p.name} has no labels file {prefix}-labels-idx1-ubyte[.gz]")
        if prefix in pairs:
            raise BadInputError(f"data folder {root}: two images files for {prefix!r}; keep one (gzipped or not)")
        pairs[prefix] = (p, labels)
    return pairs


def _order(pairs: dict[str, tuple[Path, Path]]) -> tuple[list[str], int]:
    """The prefixes in reading order and how many come last as training-only (``train`` behind a held-out pair)."""
    held = [k for k in pairs if k in _HELD_OUT]
    train = [k for k in pairs if k in _TRAIN]
    if held and train:
        others = [k for k in pairs if k not in held and k not in train]
        return [*held, *others, *train], len(train)
    return list(pairs), 0


def read_idx_folder(
    root: Path, resize_to: tuple[int, int, int] | None = None, policy: ImagePolicy = DEFAULT_POLICY
) -> tuple[IdxImages, np.ndarray, int]:
    """Open every IDX pair of ``root``: the lazy images, the labels and the number of classes. With ``resize_to``
    (``C x H x W``), uint8 images of another size are resized to it as image files are (``policy``'s filter).

    Raises:
        BadInputError: no such folder, no IDX pair, a pair whose counts or image sizes disagree, or a bad file.
    """
    if not root.is_dir():
        raise BadInputError(f"data folder {root} does not exist")
    pairs = _pairs(root)
    if not pairs:
        raise BadInputError(f"data folder {root}: no IDX images file (e.g. train-images-idx3-ubyte[.gz])")
    order, n_train_parts = _order(pairs)
    parts: list[np.memmap] = []
    temps: list[Path] = []
    labels: list[np.ndarray] = []
    try:
        for prefix in order:
            img_path, lab_path = pairs[prefix]
            arr, temp = map_idx(img_path)
            if temp is not None:
                temps.append(temp)
            lab = read_labels(lab_path)
            if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3)):
                raise BadInputError(f"data file {img_path}: images must be N x H x W (idx3) or N x H x W x C (idx4)")
            if len(lab) != len(arr):
                raise BadInputError(
                    f"data folder {root}: {img_path.name} holds {len(arr)} images but {lab_path.name} {len(lab)} labels"
                )
            if parts and arr.shape[1:] != parts[0].shape[1:]:
                raise BadInputError(
                    f"data folder {root}: {img_path.name} images are {arr.shape[1:]}, "
                    f"{pairs[order[0]][0].name} {parts[0].shape[1:]}"
                )
            parts.append(arr)
            labels.append(lab)
    except BaseException:
        for t in temps:
            _remove(t)
        raise
    digest = "\0".join(f"{pairs[k][0].name}:{sha256_file(pairs[k][0])}" for k in order)
    train_only = sum(len(p) for p in parts[len(parts) - n_train_parts :]) if n_train_parts else 0
    images = IdxImages(parts, digest, temps, train_only, resize_to, policy)
    why = _cannot_resize(images, parts[0].dtype, resize_to)
    if why:
        raise BadInputError(f"data folder {root}: {why}")
    all_labels = np.concatenate(labels)
    return images, all_labels, int(all_labels.max(initial=-1)) + 1
