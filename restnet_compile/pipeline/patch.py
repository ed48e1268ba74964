"""Make a bundle patch: the files a newer build has that the old bundle lacks (format: ``runtime.patch``).

Files the old bundle already has byte for byte come from it (segments shared with the old variants, most of all);
new files travel whole; a changed text file (the manifest, the C arrays, the report) travels as a line delta
against its old version; binary files that changed travel whole.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from restnet_compile.bundle.manifest import MANIFEST, load_manifest
from restnet_compile.runtime.patch import COPY, DATA, PATCH_FORMAT, patch_bytes

TEXT_SUFFIXES = (".json", ".cc", ".h", ".md", ".html", ".sh", ".csv")


def line_delta(old: bytes, new: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
    """Ops that rebuild ``new`` from ranges of ``old`` and of the returned blob (lines compared)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line))
    ops: list[tuple[int, int, int]] = []
    blob = bytearray()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append((COPY, starts[i1], starts[i2] - starts[i1]))
        elif j2 > j1:
            data = b"".join(b[j1:j2])
            ops.append((DATA, len(blob), len(data)))
            blob += data
    return ops, bytes(blob)


def _entry(name: str, old_dir: Path, new: bytes, blobs: dict[str, bytes]) -> dict:
    sha = hashlib.sha256(new).hexdigest()
    old_path = old_dir / name
    old = old_path.read_bytes() if old_path.is_file() else None
    if old == new:
        return {"sha256": sha, "source": "base"}
    blob = f"{len(blobs):04d}"
    if old is not None and name.endswith(TEXT_SUFFIXES):
        ops, data = line_delta(old, new)
        if len(data) < len(new):
            blobs[blob] = data
            return {"sha256": sha, "source": "delta", "blob": blob, "ops": [list(op) for op in ops]}
    blobs[blob] = new
    return {"sha256": sha, "source": "patch", "blob": blob}


def make_patch(old_dir: Path, new_dir: Path) -> bytes:
    """The patch that turns the bundle ``old_dir`` into the bundle ``new_dir`` (both checked by their seals).

    Raises:
        BundleError: either directory is not a bundle with a valid manifest.
    """
    old, new = load_manifest(old_dir), load_manifest(new_dir)
    blobs: dict[str, bytes] = {}
    files = {
        name: _entry(name, old_dir, (new_dir / name).read_bytes(), blobs) for name in sorted([*new.files, MANIFEST])
    }
    data = {
        "format_version": PATCH_FORMAT,
        "base_manifest_sha256": old.manifest_sha256,
        "result_manifest_sha256": new.manifest_sha256,
        "files": files,
    }
    return patch_bytes(data, blobs)
