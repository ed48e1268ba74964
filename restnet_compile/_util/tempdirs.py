"""Temporary directories a killed build can leave behind, named so that the next build can remove them safely.

A directory made here is called ``<prefix><host>.<pid>.<random>``. A later process removes it only when the name
carries this machine's host name and a process id that no longer runs: a build that is still running elsewhere on
the machine, on another machine sharing the disk, or a directory we did not make (other name) is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def owner_tag() -> str:
    """``<host>.<pid>`` of this process, as embedded in the names of its temporary directories."""
    return f"{_HOST}.{os.getpid()}"


def make_owned_dir(parent: Path, prefix: str) -> Path:
    """A new empty directory ``parent/<prefix><host>.<pid>.<random>``."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}.", dir=parent))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return True  # never treat a nonsense id as proof of death
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_dirs(parent: Path, prefix: str, prefix_pattern: str | None = None) -> list[Path]:
    """Directories under ``parent`` made by :func:`make_owned_dir` with ``prefix`` whose process has died.

    ``prefix_pattern`` (a regular expression) replaces the literal ``prefix`` to match several prefixes at once.
    """
    head = prefix_pattern if prefix_pattern is not None else re.escape(prefix)
    pattern = re.compile(head + re.escape(_HOST) + r"\.(?P<pid>\d+)\.[A-Za-z0-9_]+$")
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    found = []
    for path in entries:
        m = pattern.match(path.name)
        if m and int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"])) and path.is_dir():
            found.append(path)
    return found


def remove_stale(parent: Path, prefix: str, prefix_pattern: str | None = None) -> list[Path]:
    """Remove what :func:`stale_dirs` finds; return the removed paths (errors are ignored: best effort)."""
    removed = stale_dirs(parent, prefix, prefix_pattern)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


@contextmanager
def owned_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A directory made by :func:`make_owned_dir`, removed with everything in it when the block ends."""
    path = make_owned_dir(parent, prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
