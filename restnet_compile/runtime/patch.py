"""Bundle patches applied on the device, all or nothing (the format: :mod:`restnet_compile.bundle.patch`).

:func:`apply_patch` builds the result in a directory beside the bundle, checks every file against its sha256 and the
result's manifest against the patch, then swaps it into place; on any error the bundle on disk is untouched.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from restnet_compile._util.atomic import replace_dir
from restnet_compile._util.hashing import sha256_file
from restnet_compile.bundle.manifest import MANIFEST, BundleError, Manifest, load_manifest, read_manifest
from restnet_compile.bundle.patch import COPY, Patch, PatchFile, read_patch


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
