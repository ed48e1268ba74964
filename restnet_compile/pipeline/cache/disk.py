"""The on-disk cache: a content-addressed directory of the results of expensive build stages.

The key of an entry is the sha256 of the canonical JSON of everything that determines the stage's output
(:func:`cache_key`). Layout under the cache root::

    entries/<key[:2]>/<key>/   one complete entry: payload files + entry.json (key, metadata, sha256 of every file)
    tmp/<host>.<pid>.<rnd>/    an entry being written; it becomes visible only by one os.rename into entries/

A killed writer therefore leaves at most a directory under ``tmp/``, which the next opener removes once that process
is gone. Reading checks entry.json's own checksum and every payload file's sha256: an entry that is incomplete,
corrupt or unreadable is removed and reads as a miss, never as an error. Arrays are stored as ``.npy`` bytes
(no pickle), so they round-trip bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.tempdirs import make_owned_dir, remove_stale
from restnet_compile.bundle._codec import OPTIONAL, decode, encode

CACHE_ENV = "RESTNET_COMPILE_CACHE"
ENTRY_FILE = "entry.json"
STORE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$RESTNET_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/restnet-compile``, else ``~/.cache/restnet-compile``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "restnet-compile"


def canonical_json(data: object) -> bytes:
    """Sorted keys, no whitespace, ASCII: equal data gives equal bytes (a TypeError for non-JSON values)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode()


def cache_key(stage: str, schema: int, inputs: Mapping[str, object]) -> str:
    """The key of a stage's result: sha256 of the stage name, its schema version and its inputs."""
    return hashlib.sha256(canonical_json({"stage": stage, "schema": schema, "inputs": inputs})).hexdigest()


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """``array`` in ``.npy`` format (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray[Any, Any]:
    """The array of :func:`npy_bytes` (refuses pickled objects)."""
    array: np.ndarray[Any, Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return array


def _check_name(name: str) -> str:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name == ENTRY_FILE:
        raise ValueError(f"bad cache file name {name!r}")
    return Path(name).as_posix()


@dataclass(frozen=True)
class EntryRecord:
    """``entry.json``: the disk cache's format, the entry's key, the stage's metadata, the sha256 of every payload file,
    and ``checksum``, the sha256 of the canonical JSON of the other four."""

    format: int
    key: str
    meta: dict[str, Any]
    files: dict[str, str]
    checksum: str | None = field(default=None, metadata=OPTIONAL)

    def sealed(self) -> EntryRecord:
        """This record with its checksum computed."""
        body = encode(dataclasses.replace(self, checksum=None))
        return dataclasses.replace(self, checksum=hashlib.sha256(canonical_json(body)).hexdigest())


@dataclass(frozen=True)
class Entry:
    """One verified cache entry.

    Attributes:
        path: Its directory.
        meta: The JSON metadata stored with it.
        files: Names of its payload files (relative POSIX paths).
    """

    path: Path
    meta: dict[str, Any]
    files: tuple[str, ...]

    def file(self, name: str) -> Path:
        """Path of the payload file ``name``."""
        return self.path / name

    def read(self, name: str) -> bytes:
        """Bytes of the payload file ``name``."""
        return (self.path / name).read_bytes()


class DiskCache:
    """Entries under ``root``, written atomically and verified on every read."""

    def __init__(self, root: Path) -> None:
        """Open (and create) the cache directory; remove what killed writers left in ``tmp/``.

        Raises:
            OSError: ``root`` cannot be created or written.
        """
        self.root = root
        self.entries = root / "entries"
        self.tmp = root / "tmp"
        self.entries.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        remove_stale(self.tmp, "")

    def _dir(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"bad cache key {key!r}")
        return self.entries / key[:2] / key

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or None (a corrupt or partial entry is removed and also gives None)."""
        path = self._dir(key)
        if not path.is_dir():
            return None
        try:
            return self._verified(path, key)
        except (OSError, ValueError, KeyError, TypeError):
            self.discard(key)
            return None

    def _verified(self, path: Path, key: str) -> Entry:
        record: EntryRecord = decode(EntryRecord, json.loads((path / ENTRY_FILE).read_text(encoding="ascii")))
        if record.checksum is None or record.checksum != record.sealed().checksum:
            raise ValueError("entry.json checksum mismatch")
        if record.format != STORE_FORMAT or record.key != key:
            raise ValueError("entry of another key or format")
        for name, digest in record.files.items():
            if sha256_file(path / _check_name(name)) != digest:
                raise ValueError(f"payload {name} checksum mismatch")
        return Entry(path, record.meta, tuple(record.files))

    def put(self, key: str, meta: Mapping[str, object], files: Mapping[str, bytes | Path] | None = None) -> Entry:
        """Store ``meta`` and ``files`` (name -> bytes, or a file to copy) under ``key``, atomically.

        When another process stored the same key first, its entry is kept (same key, same content).

        Raises:
            OSError: the entry could not be written (nothing becomes visible then).
        """
        final = self._dir(key)
        tmp = make_owned_dir(self.tmp, "")
        try:
            digests = {}
            for name, content in (files or {}).items():
                dest = tmp / _check_name(name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Path):
                    shutil.copyfile(content, dest)
                else:
                    dest.write_bytes(content)
                digests[dest.relative_to(tmp).as_posix()] = sha256_file(dest)
            record = EntryRecord(STORE_FORMAT, key, dict(meta), digests).sealed()
            (tmp / ENTRY_FILE).write_text(json.dumps(encode(record), indent=1, sort_keys=True), encoding="ascii")
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Entry(final, dict(meta), tuple(sorted(digests)))

    def discard(self, key: str) -> None:
        """Remove the entry of ``key`` (first renamed out of ``entries/``, so readers never see half of it)."""
        path = self._dir(key)
        if not path.exists():
            return
        trash = make_owned_dir(self.tmp, "")
        try:
            os.rename(path, trash)  # replaces the empty directory
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
