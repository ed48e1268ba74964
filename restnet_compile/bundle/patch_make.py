"""Make a bundle patch: the bytes a newer build has that the old bundle lacks (the format: :mod:`.patch`).

Files the old bundle already has byte for byte come from it. Every other file travels as a delta when that is
smaller: ranges copied from the old bundle's files of its kind (the file of the same name first, then every other file
with its suffix) and the bytes found nowhere there. A segment the old bundle lacks is mostly blocks it already holds
in another segment (a cut moved), quantized the same way, so its constants come from the old files; a shared
``segments.tflite`` that gained a variant keeps every old segment's bytes; the C arrays print 16 bytes a line from
16-byte aligned constants, so the same weights give the same text in any segment.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from restnet_compile.bundle.manifest import MANIFEST, load_manifest
from restnet_compile.bundle.patch import COPY, DATA, OP, PATCH_FORMAT, FileRecord, PatchRecord, patch_bytes

MATCH = 32  # the shortest run of bytes copied from a base file
_STEP = 4  # base offsets indexed: every run of MATCH + _STEP - 1 equal bytes is found


def byte_delta(old: bytes, new: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
    """Ops that rebuild ``new`` from ranges of ``old`` and of the returned blob: every run of at least ``MATCH``
    bytes (plus alignment) that ``old`` holds is copied, the rest travels in the blob."""
    index: dict[bytes, int] = {}
    for i in range(len(old) - MATCH, -1, -_STEP):  # the first occurrence wins
        index[old[i : i + MATCH]] = i
    ops: list[tuple[int, int, int]] = []
    blob = bytearray()
    literal = j = 0  # new[literal:j] has found no match yet

    def flush(end: int) -> None:
        if end > literal:
            ops.append((DATA, len(blob), end - literal))
            blob.extend(new[literal:end])

    while j + MATCH <= len(new):
        found = index.get(new[j : j + MATCH])
        if found is None:
            j += 1
            continue
        i = found
        start, base = j, i
        while start > literal and base > 0 and new[start - 1] == old[base - 1]:
            start, base = start - 1, base - 1
        end, stop = j + MATCH, i + MATCH
        while end < len(new) and stop < len(old):
            k = min(256, len(new) - end, len(old) - stop)
            if new[end : end + k] == old[stop : stop + k]:
                end, stop = end + k, stop + k
                continue
            while new[end] == old[stop]:
                end, stop = end + 1, stop + 1
            break
        flush(start)
        if ops and ops[-1][0] == COPY and ops[-1][1] + ops[-1][2] == base:
            ops[-1] = (COPY, ops[-1][1], ops[-1][2] + end - start)
        else:
            ops.append((COPY, base, end - start))
        literal = j = end
    flush(len(new))
    return ops, bytes(blob)


def _sources(name: str, old_files: list[str]) -> list[str]:
    """The base files a new ``name`` may copy from: its namesake, then the others with its suffix."""
    suffix = Path(name).suffix
    same = [name] if name in old_files else []
    return same + [f for f in old_files if f != name and Path(f).suffix == suffix]


def _entry(name: str, old_dir: Path, old_files: list[str], new: bytes, blobs: dict[str, bytes]) -> FileRecord:
    sha = hashlib.sha256(new).hexdigest()
    old_path = old_dir / name
    if name in old_files and old_path.read_bytes() == new:
        return FileRecord(sha, "base")
    blob = f"{len(blobs):04d}"
    sources = _sources(name, old_files)
    if sources:
        ops, data = byte_delta(b"".join((old_dir / s).read_bytes() for s in sources), new)
        packed = b"".join(OP.pack(*op) for op in ops)
        if len(data) + len(packed) < len(new):
            blobs[blob] = data
            ops_blob = f"{len(blobs):04d}"
            blobs[ops_blob] = packed
            return FileRecord(sha, "delta", blob=blob, sources=tuple(sources), ops_blob=ops_blob)
    blobs[blob] = new
    return FileRecord(sha, "patch", blob=blob)


def make_patch(old_dir: Path, new_dir: Path) -> bytes:
    """The patch that turns the bundle ``old_dir`` into the bundle ``new_dir`` (both checked by their seals).

    Raises:
        BundleError: either directory is not a bundle with a valid manifest.
    """
    old, new = load_manifest(old_dir), load_manifest(new_dir)
    old_files = sorted([*old.files, MANIFEST])
    blobs: dict[str, bytes] = {}
    files = {
        name: _entry(name, old_dir, old_files, (new_dir / name).read_bytes(), blobs)
        for name in sorted([*new.files, MANIFEST])
    }
    assert old.manifest_sha256 is not None and new.manifest_sha256 is not None, "a loaded manifest carries its seal"
    return patch_bytes(PatchRecord(PATCH_FORMAT, old.manifest_sha256, new.manifest_sha256, files), blobs)
