"""Where cached prefix features (and feature-matching targets) live while adapters are tuned.

A store holds ``N`` rows of one feature tensor and gives float32 tensors back by row index (a slice or a tensor of
indices), so the tuning loop reads a store as it would read a tensor. Four kinds:

* ``ram``: one tensor in memory (the fastest; what tuning always did).
* ``mmap``: a float32 file on disk, rows read on demand through the operating system's page cache: the same values
  as ``ram``, so the same tuned adapters, byte for byte. Rows are read with positional reads rather than through a
  mapping, so the pages read are cached by the kernel (and dropped under memory pressure) but never count towards
  the build's own resident memory.
* ``mmap-fp16``: the same file in float16, half the disk and I/O; features are rounded to float16 (relative error
  below 2^-11), so tuned adapters differ slightly from ``ram``'s.
* ``recompute``: nothing stored; every read runs the frozen prefix on the rows' images again. Memory and disk stay
  flat, each tuning epoch costs a prefix forward pass again, and the features can differ from the cached ones in
  the last bits (batches of another size).

:class:`RowsWriter` fills a ``ram``, ``mmap`` or ``mmap-fp16`` store batch by batch from one pass over the data.

A file store sent to another process (a Ray worker, maybe on another machine) travels as its rows, never as a path:
the copy spills them to a file in that process's own temporary folder (:func:`received_folder`), which the process
removes when its job is done (:func:`release_received`); one a killed process left is removed by the next.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from restnet_compile._util.tempdirs import make_owned_dir, remove_stale

StoreKind = Literal["ram", "mmap", "mmap-fp16", "recompute"]
STORE_KINDS: tuple[StoreKind, ...] = ("ram", "mmap", "mmap-fp16", "recompute")
Fn = Callable[[torch.Tensor], torch.Tensor]


class Rows(ABC):
    """``N`` rows of a feature tensor, read by index as float32 tensors on the store's device."""

    shape: tuple[int, ...]
    device: str | torch.device

    def __len__(self) -> int:
        return self.shape[0]

    @abstractmethod
    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        """The rows at ``key`` (a slice, or a 1-D tensor of indices in the order wanted)."""

    @abstractmethod
    def map(self, fn: Fn, batch: int = 500) -> Rows:
        """A store of the same kind holding ``fn`` of every batch of ``batch`` consecutive rows."""

    @abstractmethod
    def to(self, device: str | torch.device) -> Rows:
        """These rows handed out on ``device``."""


class RamRows(Rows):
    """Rows of one in-memory tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor, self.shape, self.device = tensor, tuple(tensor.shape), tensor.device

    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        return self.tensor[key]

    def map(self, fn: Fn, batch: int = 500) -> Rows:
        return RamRows(torch.cat([fn(self.tensor[i : i + batch]) for i in range(0, len(self), batch)]))

    def to(self, device: str | torch.device) -> Rows:
        return RamRows(self.tensor.to(device))

    def __reduce__(self) -> tuple:
        # on the CPU, as a numpy array: Ray's object store holds it without pickling a copy, and a worker reads it
        # in place (a pickled tensor is copied out on both sides, seconds for the features of a build)
        if self.tensor.device.type != "cpu" or self.tensor.dtype == torch.bfloat16:  # no numpy array of either
            return (RamRows, (self.tensor,))
        return (_ram_rows, (self.tensor.detach().numpy(),))


class FileRows(Rows):
    """Rows of a C-ordered file of float32 or float16 values, read with positional reads."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], device: str | torch.device = "cpu"):
        self.path, self.dtype, self.shape, self.device = path, np.dtype(dtype), shape, device
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def _read(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        flat = out.reshape(len(idx), -1).view(np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for k, i in enumerate(idx.tolist()):
                view = memoryview(flat[k])
                got = os.preadv(fd, [view], i * self.row_bytes)
                if got != self.row_bytes:
                    raise OSError(f"feature file {self.path}: short read at row {i}")
        finally:
            os.close(fd)
        return out

    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        if isinstance(key, slice):
            idx = np.arange(len(self))[key]
        else:
            idx = key.detach().cpu().numpy().astype(np.int64)
        rows = torch.from_numpy(self._read(idx))
        return rows.to(device=self.device, dtype=torch.float32)

    def map(self, fn: Fn, batch: int = 500) -> Rows:
        writer = RowsWriter("mmap-fp16" if self.dtype == np.float16 else "mmap", len(self), self.path.parent)
        for i in range(0, len(self), batch):
            writer.append(fn(self[i : i + batch]))
        return writer.finish().to(self.device)

    def to(self, device: str | torch.device) -> Rows:
        return FileRows(self.path, self.dtype, self.shape, device)

    def __reduce__(self) -> tuple:  # the rows themselves: another process cannot see this file
        data = np.fromfile(self.path, dtype=self.dtype, count=int(np.prod(self.shape, dtype=np.int64)))
        return (_received_rows, (data, self.shape, str(self.device)))


#: Prefix of a process's folder of feature files (its own spills and what it received).
RECEIVED_PREFIX = "restnet-compile-features-"
_received: list[Path] = []


def received_folder() -> Path:
    """This process's folder for the feature files of stores it received (made on first use, after removing the
    folders of dead processes)."""
    if not _received:
        parent = Path(tempfile.gettempdir())
        remove_stale(parent, RECEIVED_PREFIX)
        _received.append(make_owned_dir(parent, RECEIVED_PREFIX))
    return _received[0]


def release_received() -> None:
    """Remove :func:`received_folder` and every file in it (the job that used them is done)."""
    while _received:
        shutil.rmtree(_received.pop(), ignore_errors=True)


def _ram_rows(data: np.ndarray) -> RamRows:
    # a copy: an array read from Ray's object store is read-only, and a tensor over it could be written to
    return RamRows(torch.from_numpy(np.array(data, copy=True)))


def _received_rows(data: np.ndarray, shape: tuple[int, ...], device: str) -> FileRows:
    fd, name = tempfile.mkstemp(prefix="features.", suffix=".bin", dir=received_folder())
    with os.fdopen(fd, "wb") as f:
        f.write(np.ascontiguousarray(data).tobytes())
    rows = FileRows(Path(name), data.dtype, shape, device)
    weakref.finalize(rows, _unlink, name)
    return rows


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


class ComputedRows(Rows):
    """Rows computed on demand: ``source(idx)`` (indices as a numpy array), then each of ``after`` in order."""

    def __init__(
        self,
        source: Callable[[np.ndarray], torch.Tensor],
        shape: tuple[int, ...],
        device: str | torch.device = "cpu",
        after: tuple[Fn, ...] = (),
    ):
        self.source, self.shape, self.device, self.after = source, shape, device, after

    @torch.no_grad()
    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        idx = np.arange(len(self))[key] if isinstance(key, slice) else key.detach().cpu().numpy().astype(np.int64)
        out = self.source(idx)
        for fn in self.after:
            out = fn(out)
        return out.to(self.device)

    def map(self, fn: Fn, batch: int = 500) -> Rows:
        with torch.no_grad():
            shape = (len(self), *fn(self[0:1]).shape[1:])
        return ComputedRows(self.source, shape, self.device, (*self.after, fn))

    def to(self, device: str | torch.device) -> Rows:
        return ComputedRows(self.source, self.shape, device, self.after)


class RowsWriter:
    """Fills a store of ``n`` rows batch by batch (``ram``, ``mmap`` or ``mmap-fp16``); files go in ``folder``."""

    def __init__(self, kind: StoreKind, n: int, folder: Path | None = None) -> None:
        if kind == "recompute":
            raise ValueError("a recompute store is not written")
        if kind != "ram" and folder is None:
            raise ValueError(f"a {kind} store needs a folder for its file")
        self.kind, self.n, self.folder, self.done = kind, n, folder, 0
        self.tensor: torch.Tensor | None = None
        self.file: Path | None = None
        self.shape: tuple[int, ...] = ()

    def append(self, batch: torch.Tensor) -> None:
        """Add the next rows (on any device; kept on the CPU)."""
        batch = batch.detach().cpu()
        if not self.shape:
            self._open(tuple(batch.shape[1:]), batch.dtype)
        k = batch.shape[0]
        if self.tensor is not None:
            self.tensor[self.done : self.done + k] = batch
        else:
            dtype = np.float16 if self.kind == "mmap-fp16" else np.float32
            data = np.ascontiguousarray(batch.numpy().astype(dtype, copy=False))
            with open(self.file, "r+b") as f:  # type: ignore[arg-type]
                f.seek(self.done * data[0].nbytes if k else 0)
                f.write(data.tobytes())
        self.done += k

    def _open(self, row: tuple[int, ...], dtype: torch.dtype) -> None:
        self.shape = (self.n, *row)
        if self.kind == "ram":
            self.tensor = torch.empty(self.shape, dtype=dtype)
            return
        fd, name = tempfile.mkstemp(prefix="features.", suffix=".bin", dir=self.folder)
        os.close(fd)
        self.file = Path(name)

    def finish(self) -> Rows:
        """The filled store."""
        if self.done != self.n:
            raise ValueError(f"feature store got {self.done} rows, expected {self.n}")
        if self.tensor is not None:
            return RamRows(self.tensor)
        if self.file is None:  # no rows at all
            return RamRows(torch.empty((0,)))
        return FileRows(self.file, np.dtype(np.float16 if self.kind == "mmap-fp16" else np.float32), self.shape)


def rows_of(x: torch.Tensor | Rows) -> Rows:
    """A tensor as in-memory rows; rows as they are."""
    return x if isinstance(x, Rows) else RamRows(x)


@torch.no_grad()
def channel_variance(rows: Rows, batch: int = 500) -> torch.Tensor:
    """Variance of every channel over all rows (and positions), shaped to broadcast against a batch of rows.

    Maps ``N x C x H x W`` reduce over ``N, H, W``; tokens ``N x T x D`` over ``N, T``. Two passes in float64 (the
    precision torch's own float32 ``var`` accumulates in), rounded to float32, with Bessel's correction.
    """
    first = rows[0:1]
    dims = (0, 2, 3) if first.dim() == 4 else tuple(range(first.dim() - 1))
    total: torch.Tensor | None = None
    count = 0
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch].double()
        s = part.sum(dims, keepdim=True)
        total = s if total is None else total + s
        count += part.numel() // s.numel()
    assert total is not None, "no rows"
    mean = total / count
    sq: torch.Tensor | None = None
    for i in range(0, len(rows), batch):
        d = ((rows[i : i + batch].double() - mean) ** 2).sum(dims, keepdim=True)
        sq = d if sq is None else sq + d
    assert sq is not None
    return (sq / max(count - 1, 1)).to(torch.float32).to(first.device)
