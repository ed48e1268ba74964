"""Bundle directory publishing: checksums, deterministic archive, atomic rename (the manifest: ``manifest.py``)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from restnet_compile._util.atomic import replace_dir
from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.tempdirs import make_owned_dir, remove_stale
from restnet_compile.bundle.manifest import MANIFEST
from restnet_compile.errors import BadInputError

#: Staging directories are ``.<name>.tmp-<host>.<pid>.<random>``: hidden, and removable once their build is dead.
STAGING_PATTERN = r"\.[^/]+\.tmp-"


def checksums(root: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative POSIX names, sorted)."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in exclude
    }


def write_archive(src: Path, dest: Path) -> None:
    """A reproducible ``.tar.gz`` of ``src``: sorted entries, zero mtimes, no owner names, no gzip timestamp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in [src, *sorted(src.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname=(Path(src.name) / path.relative_to(src)).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    with dest.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue())


def check_output_dir(out: Path) -> None:
    """Refuse an output location that is a file or cannot be written, before any work is done."""
    if out.exists() and not out.is_dir():
        raise BadInputError(f"output {out} exists and is not a directory")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path.cwd())
    if not parent.is_dir():
        raise BadInputError(f"output {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"output {out}: directory {parent} is not writable")


@contextmanager
def staging(out_root: Path, name: str) -> Iterator[Path]:
    """Yield a temporary directory beside ``out_root/name``; on success it replaces that bundle atomically.

    An archive written next to the yielded directory as ``<name>.tar.gz`` is published beside the bundle too.

    On any error the temporary directory is removed and nothing under ``out_root`` changes (apart from
    ``out_root`` itself being created). Staging directories that builds killed on this machine left behind are
    removed first (only ours: recognised by their name, and only once their process is gone).
    """
    out_root.mkdir(parents=True, exist_ok=True)
    remove_stale(out_root, "", STAGING_PATTERN)
    tmp = make_owned_dir(out_root, f".{name}.tmp-")
    stage = tmp / name
    stage.mkdir()
    try:
        yield stage
        replace_dir(stage, out_root / name, tmp / "previous")
        archive = tmp / f"{name}.tar.gz"
        if archive.exists():
            os.replace(archive, out_root / archive.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
