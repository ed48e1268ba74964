"""Bundle patches: what a newer build of a bundle adds, applied on the device all or nothing.

A patch is one file: the line ``RESTNET-PATCH 1``, the length of ``patch.json`` as 8 bytes (big-endian), the sealed
``patch.json``, then the blobs it lists (offset, length and sha256 of each). ``patch.json`` names the bundle it
applies to (the seal of its manifest, ``base_manifest_sha256``) and the bundle it makes (``result_manifest_sha256``),
and lists every file of the result with its sha256 and where its bytes come from: ``base`` (the file as the base
bundle has it), ``patch`` (a blob) or ``delta`` (ranges copied from the base files it lists in ``from``, read as one
run of bytes in that order, and ranges of a blob; the ops are the blob ``ops_blob``, 17 bytes each: the kind, then
offset and length as little-endian uint64). It carries its own seal, ``patch_sha256``, computed like the
manifest's. Format 1 (a delta copies from the file of its own name) still reads.

:func:`apply_patch` builds the result in a directory beside the bundle, checks every file against its sha256 and the
result's manifest against the patch, then swaps it into place; on any error the bundle on disk is untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restnet_compile._util.atomic import replace_dir
from restnet_compile._util.hashing import sha256_file
from restnet_compile.bundle.manifest import MANIFEST, BundleError, Manifest, load_manifest, read_manifest

PATCH_JSON = "patch.json"
PATCH_FORMAT = 2
READABLE_FORMATS = (1, 2)
MAGIC = b"RESTNET-PATCH 1\n"
_SEAL_FIELD = "patch_sha256"
_ZEROS = "0" * 64
_SEAL = re.compile(rb'"' + _SEAL_FIELD.encode() + rb'": "([0-9a-f]{64})"')
COPY, DATA = 0, 1  # delta ops: [COPY, offset in the base files, length] or [DATA, offset in the blob, length]
OP = struct.Struct("<BQQ")


@dataclass(frozen=True)
class PatchFile:
    """One file of the result: its sha256 and where its bytes come from (``base``, ``patch`` or ``delta``); a delta
    copies from the base files ``sources`` (the file's own name when the patch lists none)."""

    sha256: str
    source: str
    blob: str | None = None
    ops: tuple[tuple[int, int, int], ...] = ()
    sources: tuple[str, ...] = ()
    ops_blob: str | None = None


@dataclass(frozen=True)
class Patch:
    """A read, seal-checked patch and its blobs."""

    base_manifest_sha256: str
    result_manifest_sha256: str
    files: dict[str, PatchFile]
    blobs: dict[str, bytes]


def seal_patch(data: dict[str, Any]) -> bytes:
    """``patch.json`` bytes (sorted keys, indent 2) carrying their own sha256 (see ``bundle.manifest.seal``)."""
    raw = (json.dumps({**data, _SEAL_FIELD: _ZEROS}, indent=2, sort_keys=True) + "\n").encode()
    blank = f'"{_SEAL_FIELD}": "{_ZEROS}"'.encode()
    return raw.replace(blank, f'"{_SEAL_FIELD}": "{hashlib.sha256(raw).hexdigest()}"'.encode(), 1)


def _unsealed(raw: bytes, where: str) -> dict[str, Any]:
    seals = list(_SEAL.finditer(raw))
    if len(seals) != 1:
        raise BundleError(f"{where}: {PATCH_JSON} has no valid {_SEAL_FIELD} seal")
    found = seals[0]
    blanked = raw[: found.start(1)] + _ZEROS.encode() + raw[found.end(1) :]
    if hashlib.sha256(blanked).hexdigest() != found.group(1).decode():
        raise BundleError(f"{where}: {PATCH_JSON} does not match its own {_SEAL_FIELD}: the patch was altered")
    data: dict[str, Any] = json.loads(raw)
    return data


def _safe(name: str, where: str) -> str:
    if not name or name.startswith("/") or ".." in Path(name).parts or "\\" in name:
        raise BundleError(f"{where}: the patch names file {name!r} outside the bundle")
    return name


def _file(name: str, d: dict[str, Any], where: str) -> PatchFile:
    try:
        ops = tuple((int(k), int(a), int(n)) for k, a, n in d.get("ops", []))
        sources = tuple(_safe(str(s), where) for s in d.get("from", [name]))
        pf = PatchFile(str(d["sha256"]), str(d["source"]), d.get("blob"), ops, sources, d.get("ops_blob"))
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{where}: {PATCH_JSON}: file {name} is not described as a patch describes files") from None
    if pf.source not in ("base", "patch", "delta"):
        raise BundleError(f"{where}: {PATCH_JSON}: file {name} has unknown source {pf.source!r}")
    return pf


def _blobs(data: dict[str, Any], payload: bytes, where: str) -> dict[str, bytes]:
    blobs = {}
    for name, (offset, length, sha) in data.get("blobs", {}).items():
        blob = payload[int(offset) : int(offset) + int(length)]
        if len(blob) != int(length):
            raise BundleError(f"{where}: the patch ends inside its data: it is truncated")
        if hashlib.sha256(blob).hexdigest() != sha:
            raise BundleError(f"{where}: the patch's data does not match its sha256: the patch was altered")
        blobs[name] = blob
    return blobs


def read_patch(path: Path) -> Patch:
    """Read and check a patch file.

    Raises:
        BundleError: not a patch, truncated, altered (seal, data sha256), or naming a path outside the bundle.
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
    data = _unsealed(raw[head : head + size], where)
    if data.get("format_version") not in READABLE_FORMATS:
        readable = ", ".join(map(str, READABLE_FORMATS))
        version = data.get("format_version")
        raise BundleError(f"{where}: patch format {version!r} is not one this code reads ({readable})")
    blobs = _blobs(data, raw[head + size :], where)
    files = {_safe(n, where): _file(n, d, where) for n, d in data.get("files", {}).items()}
    for name, f in files.items():
        if f.source != "base" and f.blob not in blobs:
            raise BundleError(f"{where}: the patch lacks the data of {name}")
        if f.ops_blob is not None:
            raw_ops = blobs.get(f.ops_blob)
            if raw_ops is None or len(raw_ops) % OP.size:
                raise BundleError(f"{where}: the patch lacks the delta of {name}")
            files[name] = dataclasses.replace(f, ops=tuple(OP.iter_unpack(raw_ops)))
    return Patch(str(data["base_manifest_sha256"]), str(data["result_manifest_sha256"]), files, blobs)


def _rebuild(name: str, f: PatchFile, base: Path, blobs: dict[str, bytes]) -> bytes:
    if f.source == "base":
        return (base / name).read_bytes()
    blob = blobs[str(f.blob)]
    if f.source == "patch":
        return blob
    old = b"".join((base / s).read_bytes() for s in f.sources)
    return b"".join(old[a : a + n] if kind == COPY else blob[a : a + n] for kind, a, n in f.ops)


def _needs(name: str, f: PatchFile) -> tuple[str, ...]:
    """The base files the result's ``name`` is made from."""
    return {"base": (name,), "patch": (), "delta": f.sources}.get(f.source, ())


def _result_into(patch: Patch, base: Path, out: Path) -> Manifest:
    for name, f in sorted(patch.files.items()):
        for needed in _needs(name, f):
            if not (base / needed).is_file():
                raise BundleError(f"{base}: the patch needs file {needed}, which the bundle lacks")
        data = _rebuild(name, f, base, patch.blobs)
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise BundleError(f"patch: file {name} does not come out as the patch's sha256 says: the patch is altered")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    manifest = read_manifest((out / MANIFEST).read_bytes(), f"patched {MANIFEST}")
    if manifest.manifest_sha256 != patch.result_manifest_sha256:
        raise BundleError("patch: the patched manifest is not the one the patch was made for")
    if set(manifest.files) | {MANIFEST} != set(patch.files):
        raise BundleError("patch: the patched bundle's files are not the ones its manifest lists")
    return manifest


def apply_patch(bundle_dir: Path, patch_path: Path) -> Manifest:
    """Apply ``patch_path`` to the bundle ``bundle_dir`` all or nothing; the patched manifest.

    Raises:
        BundleError: the patch is unreadable, truncated or altered, made for another bundle, or the bundle's own
            files do not match its manifest; the bundle on disk is untouched then.
    """
    patch = read_patch(patch_path)
    base = load_manifest(bundle_dir)
    if base.manifest_sha256 != patch.base_manifest_sha256:
        raise BundleError(
            f"{patch_path} applies to the bundle sealed {patch.base_manifest_sha256[:12]}, "
            f"not to {bundle_dir} (sealed {str(base.manifest_sha256)[:12]})"
        )
    needed = {n for name, f in patch.files.items() for n in _needs(name, f)}
    for name, expected in base.files.items():
        if name in needed and sha256_file(bundle_dir / name) != expected:
            raise BundleError(f"{bundle_dir}: file {name} does not match its sha256 in the manifest")
    work = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.patch-", dir=bundle_dir.parent))
    try:
        (work / "new").mkdir()
        manifest = _result_into(patch, bundle_dir, work / "new")
        replace_dir(work / "new", bundle_dir, work / "old")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def patch_bytes(data: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """The patch file: ``data`` (``patch.json`` without its blob table) sealed with the table, then the blobs."""
    table, offset = {}, 0
    for name, blob in sorted(blobs.items()):
        table[name] = [offset, len(blob), hashlib.sha256(blob).hexdigest()]
        offset += len(blob)
    head = seal_patch({**data, "blobs": table})
    return MAGIC + len(head).to_bytes(8, "big") + head + b"".join(blob for _, blob in sorted(blobs.items()))
