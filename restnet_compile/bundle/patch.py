"""The bundle patch format: what a newer build of a bundle adds, read and written through typed records.

A patch is one file: the line ``RESTNET-PATCH 1``, the length of ``patch.json`` as 8 bytes (big-endian), the sealed
``patch.json``, then the blobs it lists (offset, length and sha256 of each). ``patch.json`` names the bundle it
applies to (the seal of its manifest, ``base_manifest_sha256``) and the bundle it makes (``result_manifest_sha256``),
and lists every file of the result with its sha256 and where its bytes come from: ``base`` (the file as the base
bundle has it), ``patch`` (a blob) or ``delta`` (ranges copied from the base files it lists in ``from``, read as one
run of bytes in that order, and ranges of a blob; the ops are the blob ``ops_blob``, 17 bytes each: the kind, then
offset and length as little-endian uint64). It carries its own seal, ``patch_sha256``, computed like the
manifest's. Format 1 (a delta copies from the file of its own name, its ops inline as ``ops``) still reads.

:mod:`.patch_make` makes patches; :mod:`restnet_compile.runtime.patch` applies them on the device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from restnet_compile.bundle._codec import OPTIONAL, FieldError, decode, encode
from restnet_compile.bundle.manifest import BundleError

PATCH_JSON = "patch.json"
PATCH_FORMAT = 2
READABLE_FORMATS = (1, 2)
MAGIC = b"RESTNET-PATCH 1\n"
SOURCES = ("base", "patch", "delta")
_SEAL_FIELD = "patch_sha256"
_ZEROS = "0" * 64
_SEAL = re.compile(rb'"' + _SEAL_FIELD.encode() + rb'": "([0-9a-f]{64})"')
COPY, DATA = 0, 1  # delta ops: [COPY, offset in the base files, length] or [DATA, offset in the blob, length]
OP = struct.Struct("<BQQ")

Op = tuple[int, int, int]


@dataclass(frozen=True)
class FileRecord:
    """One file of the result as ``patch.json`` lists it: its sha256 and where its bytes come from (``source``);
    ``blob``: the blob holding them (``patch``, ``delta``); ``sources`` (``from``): the base files a delta copies from;
    ``ops_blob``: the blob holding a delta's ops; ``ops``: a format 1 delta's ops, inline."""

    sha256: str
    source: str
    blob: str | None = field(default=None, metadata=OPTIONAL)
    sources: tuple[str, ...] | None = field(default=None, metadata={"json": "from", **OPTIONAL})
    ops_blob: str | None = field(default=None, metadata=OPTIONAL)
    ops: tuple[Op, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class PatchRecord:
    """``patch.json``: the bundles it joins, every file of the result and the blob table (blob name -> offset, length
    and sha256 in the data after it), sealed by ``patch_sha256``."""

    format_version: int
    base_manifest_sha256: str
    result_manifest_sha256: str
    files: dict[str, FileRecord]
    blobs: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    patch_sha256: str = _ZEROS


@dataclass(frozen=True)
class PatchFile:
    """One file of the result: its sha256 and where its bytes come from (``base``, ``patch`` or ``delta``); a delta
    copies from the base files ``sources`` (the file's own name when the patch lists none)."""

    sha256: str
    source: str
    blob: str | None = None
    ops: tuple[Op, ...] = ()
    sources: tuple[str, ...] = ()
    ops_blob: str | None = None


@dataclass(frozen=True)
class Patch:
    """A read, seal-checked patch and its blobs."""

    base_manifest_sha256: str
    result_manifest_sha256: str
    files: dict[str, PatchFile]
    blobs: dict[str, bytes]


def seal_patch(record: PatchRecord) -> bytes:
    """``patch.json`` bytes (sorted keys, indent 2) carrying their own sha256 (see ``bundle.manifest.seal``)."""
    data = encode(dataclasses.replace(record, patch_sha256=_ZEROS))
    raw = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    blank = f'"{_SEAL_FIELD}": "{_ZEROS}"'.encode()
    return raw.replace(blank, f'"{_SEAL_FIELD}": "{hashlib.sha256(raw).hexdigest()}"'.encode(), 1)


def patch_bytes(record: PatchRecord, blobs: dict[str, bytes]) -> bytes:
    """The patch file: ``record`` sealed with the table of ``blobs``, then the blobs."""
    table, offset = {}, 0
    for name, blob in sorted(blobs.items()):
        table[name] = (offset, len(blob), hashlib.sha256(blob).hexdigest())
        offset += len(blob)
    head = seal_patch(dataclasses.replace(record, blobs=table))
    return MAGIC + len(head).to_bytes(8, "big") + head + b"".join(blob for _, blob in sorted(blobs.items()))


def _record(raw: bytes, where: str) -> PatchRecord:
    """The seal-checked, field-checked ``patch.json``."""
    seals = list(_SEAL.finditer(raw))
    if len(seals) != 1:
        raise BundleError(f"{where}: {PATCH_JSON} has no valid {_SEAL_FIELD} seal")
    found = seals[0]
    blanked = raw[: found.start(1)] + _ZEROS.encode() + raw[found.end(1) :]
    if hashlib.sha256(blanked).hexdigest() != found.group(1).decode():
        raise BundleError(f"{where}: {PATCH_JSON} does not match its own {_SEAL_FIELD}: the patch was altered")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # only reachable with a recomputed seal
        raise BundleError(f"{where}: {PATCH_JSON}: invalid JSON: {exc}") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if version not in READABLE_FORMATS:
        readable = ", ".join(map(str, READABLE_FORMATS))
        raise BundleError(f"{where}: patch format {version!r} is not one this code reads ({readable})")
    try:
        record: PatchRecord = decode(PatchRecord, data)
    except FieldError as exc:
        raise BundleError(f"{where}: {PATCH_JSON} field {exc}") from None
    return record


def _safe(name: str, where: str) -> str:
    if not name or name.startswith("/") or ".." in Path(name).parts or "\\" in name:
        raise BundleError(f"{where}: the patch names file {name!r} outside the bundle")
    return name


def _file(name: str, r: FileRecord, where: str) -> PatchFile:
    if r.source not in SOURCES:
        raise BundleError(f"{where}: {PATCH_JSON}: file {name} has unknown source {r.source!r}")
    sources = tuple(_safe(s, where) for s in (r.sources if r.sources is not None else (name,)))
    return PatchFile(r.sha256, r.source, r.blob, r.ops or (), sources, r.ops_blob)


def _blobs(record: PatchRecord, payload: bytes, where: str) -> dict[str, bytes]:
    blobs = {}
    for name, (offset, length, sha) in record.blobs.items():
        blob = payload[offset : offset + length]
        if offset < 0 or length < 0 or len(blob) != length:
            raise BundleError(f"{where}: the patch ends inside its data: it is truncated")
        if hashlib.sha256(blob).hexdigest() != sha:
            raise BundleError(f"{where}: the patch's data does not match its sha256: the patch was altered")
        blobs[name] = blob
    return blobs


def read_patch(path: Path) -> Patch:
    """Read and check a patch file.

    Raises:
        BundleError: not a patch, truncated, altered (seal, data sha256), a field missing, unknown or mistyped, or
            naming a path outside the bundle.
    """
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{where}: cannot read the patch: {exc.strerror}") from None
    if not raw.startswith(MAGIC):
        raise BundleError(f"{where}: not a bundle patch (it does not start with {MAGIC.strip().decode()!r})")
    head = len(MAGIC) + 8
    size = int.from_bytes(raw[len(MAGIC) : head], "big")
    if len(raw) < head + size:
        raise BundleError(f"{where}: the patch ends inside its {PATCH_JSON}: it is truncated")
    record = _record(raw[head : head + size], where)
    blobs = _blobs(record, raw[head + size :], where)
    files = {_safe(n, where): _file(n, r, where) for n, r in record.files.items()}
    for name, f in files.items():
        if f.source != "base" and f.blob not in blobs:
            raise BundleError(f"{where}: the patch lacks the data of {name}")
        if f.ops_blob is not None:
            raw_ops = blobs.get(f.ops_blob)
            if raw_ops is None or len(raw_ops) % OP.size:
                raise BundleError(f"{where}: the patch lacks the delta of {name}")
            files[name] = dataclasses.replace(f, ops=tuple(OP.iter_unpack(raw_ops)))
    return Patch(record.base_manifest_sha256, record.result_manifest_sha256, files, blobs)
