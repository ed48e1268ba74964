"""An ``.npz`` of ``images`` and ``labels`` whose images are memory-mapped and converted per batch.

``np.load(mmap_mode="r")`` maps only ``.npy`` files: inside an ``.npz`` every member is read whole. So the images
member is mapped here directly: where it is stored uncompressed (``np.savez``), at its offset inside the ``.npz``;
where it is compressed (``np.savez_compressed``), it is first decompressed, in chunks, into a temporary ``.npy``
that is mapped instead and removed when the images are no longer used (or at exit). Labels are read whole.

Sent to another process (a Ray worker, maybe on another machine), the images travel as the stored array (uint8
stays uint8), never as a path.

Each batch read checks its rows (finite, in their dtype's range: :mod:`.checks`) and converts only them to float32
``N x C x H x W`` in ``[0, 1]`` (integers scaled by their range, channels last moved first), the same values as
converting the whole array. With ``bad_images: skip`` the images holding a NaN or an infinity are found while
opening (one pass over a float array) and left out.
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
from restnet_compile.data.checks import check_labels, check_pixels, nonfinite_rows, pixel_scale
from restnet_compile.data.lazy import LazyImages
from restnet_compile.errors import BadInputError

_READ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError)


class NpzImages(LazyImages):
    """Rows of a memory-mapped image array, checked and converted to float32 NCHW in [0, 1] when read.

    ``source`` names the file in a refusal.
    """

    def __init__(self, raw: np.ndarray, digest: str, temp: Path | None = None, source: str = "") -> None:
        self.raw, self.digest, self.temp, self.source = raw, digest, temp, source
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
        positions = np.asarray(idx, dtype=np.int64)
        rows = np.asarray(self.raw[positions])
        check_pixels(rows, positions, f"data file {self.source}")
        return to_nchw_float(rows)

    def update_digest(self, h: Any) -> None:
        h.update(f"npz\0{self.digest}".encode())

    def __reduce__(self) -> tuple:  # the array itself: another process may not see this file (or its unpacked copy)
        return (NpzImages, (np.array(self.raw), self.digest, None, self.source))


def _remove(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def to_nchw_float(images: np.ndarray) -> np.ndarray:
    """``N x H x W``, ``N x H x W x C`` or ``N x C x H x W`` (integer or float) as float32 NCHW (integers divided by
    their range's top, see :func:`~restnet_compile.data.checks.pixel_scale`)."""
    if images.ndim == 3:
        images = images[:, None]
    if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if np.issubdtype(images.dtype, np.integer):
        images = images.astype(np.float32) / np.float32(pixel_scale(images.dtype)[1])
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


def _skip_nonfinite(raw: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Indices of the images that hold a NaN or an infinity (one pass, in chunks; none for integer arrays)."""
    if not np.issubdtype(raw.dtype, np.floating):
        return np.zeros(0, dtype=np.int64)
    found = [nonfinite_rows(np.asarray(raw[i : i + chunk])) + i for i in range(0, len(raw), chunk)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def read_npz_lazy(path: Path, skip_nonfinite: bool = False) -> tuple[LazyImages, np.ndarray, int, tuple[str, ...]]:
    """Open an ``.npz``: its mapped images, its labels, the number of classes and the images left out.

    Pixels are checked as they are read (:meth:`NpzImages.read`). With ``skip_nonfinite`` the images holding a NaN or
    an infinity are found now and left out (named ``FILE[index]``).

    Raises:
        BadInputError: missing file, missing arrays, arrays of the wrong shape or type, labels outside
            ``[0, num_classes)``, or every image non-finite.
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
    images = NpzImages(raw, sha256_file(path), temp, str(path))
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise BadInputError(f"data file {path}: images must be real numbers, not {raw.dtype.name}")
    if labels.ndim != 1 or len(labels) != len(raw) or not np.issubdtype(labels.dtype, np.integer):
        raise BadInputError(f"data file {path}: labels must be {len(raw)} integers, one per image")
    labels = labels.astype(np.int64)
    num_classes = num if num is not None else int(labels.max(initial=-1)) + 1
    check_labels(labels, num_classes, f"data file {path}", "its num_classes" if num is not None else "")
    if not skip_nonfinite:
        return images, labels, num_classes, ()
    bad = _skip_nonfinite(raw)
    if len(bad) == len(raw) and len(raw):
        raise BadInputError(f"data file {path}: every one of its {len(raw)} images holds a non-finite pixel")
    keep = np.setdiff1d(np.arange(len(raw), dtype=np.int64), bad)
    kept = images.take(keep) if len(bad) else images
    return kept, labels[keep], num_classes, tuple(f"{path}[{int(i)}]" for i in bad)
