"""An ``.npz`` of ``images`` and ``labels`` whose images are memory-mapped and converted per batch.

``np.load(mmap_mode="r")`` maps only ``.npy`` files: inside an ``.npz`` every member is read whole. So the images
member is mapped here directly: where it is stored uncompressed (``np.savez``), at its offset inside the ``.npz``;
where it is compressed (``np.savez_compressed``), it is first decompressed, in chunks, into a temporary ``.npy``
that is mapped instead and removed when the images are no longer used (or at exit). Labels are read whole.

Sent to another process (a Ray worker, maybe on another machine), the images travel as the stored array (uint8
stays uint8), never as a path.

Each batch read converts only its rows to float32 ``N x C x H x W`` in ``[0, 1]`` (uint8 scaled by 1/255, channels
last moved first), the same values as converting the whole array.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile.data.lazy import LazyImages
from restnet_compile.errors import BadInputError

_READ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError)


class NpzImages(LazyImages):
    """Rows of a memory-mapped image array, converted to float32 NCHW in [0, 1] when read."""

    def __init__(self, raw: np.ndarray, digest: str, temp: Path | None = None) -> None:
        self.raw, self.digest, self.temp = raw, digest, temp
        n, *rest = raw.shape
        if raw.ndim == 3:
            rest = [1, *rest]
        elif rest[0] not in (1, 3) and rest[2] in (1, 3):
            rest = [rest[2], rest[0], rest[1]]
        self._shape = (n, *rest)
        if temp is not None:
            weakref.finalize(self, _remove, temp)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape  # type: ignore[return-value]

    def read(self, idx: np.ndarray) -> np.ndarray:
        return to_nchw_float(np.asarray(self.raw[np.asarray(idx, dtype=np.int64)]))

    def update_digest(self, h: Any) -> None:
        h.update(f"npz\0{self.digest}".encode())

    def __reduce__(self) -> tuple:  # the array itself: another process may not see this file (or its unpacked copy)
        return (NpzImages, (np.array(self.raw), self.digest))


def _remove(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def to_nchw_float(images: np.ndarray) -> np.ndarray:
    """``N x H x W``, ``N x H x W x C`` or ``N x C x H x W`` (uint8 or float) as float32 NCHW (uint8 / 255)."""
    if images.ndim == 3:
        images = images[:, None]
    if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(images, dtype=np.float32)


def _member_map(path: Path, info: zipfile.ZipInfo) -> np.memmap:
    """Map a stored (uncompressed) ``.npy`` member in place: its data start after the zip and ``.npy`` headers."""
    with path.open("rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
        f.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(f)
        offset = f.tell()
    if fortran or dtype.hasobject:
        raise ValueError("images must be a C-ordered array of numbers")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _extracted_map(z: zipfile.ZipFile, member: str) -> tuple[np.memmap, Path]:
    """Decompress a member, in chunks, into a temporary ``.npy`` and map that."""
    folder = Path(tempfile.mkdtemp(prefix="restnet-compile-npz."))
    target = folder / "images.npy"
    try:
        with z.open(member) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        arr = np.load(target, mmap_mode="r")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return arr, target


def _map_images(path: Path, z: zipfile.ZipFile) -> tuple[np.ndarray, Path | None]:
    info = z.getinfo("images.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        return _member_map(path, info), None
    return _extracted_map(z, "images.npy")


def _check_range(raw: np.ndarray, path: Path, chunk: int = 4096) -> None:
    if raw.dtype == np.uint8 or not len(raw):
        return
    if not np.issubdtype(raw.dtype, np.number):
        raise BadInputError(f"data file {path}: images must be numbers")
    for i in range(0, len(raw), chunk):
        part = np.asarray(raw[i : i + chunk])
        if part.size and (part.min() < 0 or part.max() > 1):
            raise BadInputError(f"data file {path}: float images must lie in [0, 1] (uint8 images are scaled)")


def read_npz_lazy(path: Path) -> tuple[NpzImages, np.ndarray, int]:
    """Open an ``.npz``: its mapped images, its labels and the number of classes.

    Raises:
        BadInputError: missing file, missing arrays, or arrays of the wrong shape, type or range.
    """
    if not path.is_file():
        raise BadInputError(f"data file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            names = {Path(n).stem for n in z.namelist() if n.endswith(".npy")}
            for key in ("images", "labels"):
                if key not in names:
                    have = ", ".join(sorted(names)) or "none"
                    raise BadInputError(f"data file {path}: missing array {key!r} (has {have})")
            with np.load(path, allow_pickle=False) as small:
                labels = small["labels"]
                num = int(small["num_classes"]) if "num_classes" in names else None
            raw, temp = _map_images(path, z)
    except _READ_ERRORS as exc:
        raise BadInputError(f"data file {path} is not a readable .npz of arrays: {exc}") from None
    if raw.ndim not in (3, 4):
        if temp is not None:
            _remove(temp)
        raise BadInputError(f"data file {path}: images must be N x C x H x W, N x H x W x C or N x H x W")
    images = NpzImages(raw, sha256_file(path), temp)
    _check_range(raw, path)
    if labels.ndim != 1 or len(labels) != len(raw) or not np.issubdtype(labels.dtype, np.integer):
        raise BadInputError(f"data file {path}: labels must be {len(raw)} integers, one per image")
    if len(labels) and labels.min() < 0:
        raise BadInputError(f"data file {path}: labels must be >= 0")
    return images, labels.astype(np.int64), num if num is not None else int(labels.max(initial=-1)) + 1
