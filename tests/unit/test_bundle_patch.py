"""Bundle patches: only what the old bundle lacks travels, the result is byte-identical, bad patches are refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restnet_compile import api
from restnet_compile.bundle.manifest import MANIFEST, BundleError, write_manifest
from restnet_compile.bundle.patch import COPY, MAGIC, read_patch
from restnet_compile.bundle.patch_make import byte_delta, make_patch
from restnet_compile.errors import EXIT_BAD_INPUT, BadInputError
from tests.manifests import sample_manifest

SEGMENT = bytes(range(256)) * 40  # a shared segment: 10 KB that must not travel


def _bundle(root: Path, files: dict[str, bytes], variants: int) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    m = sample_manifest()
    m = dataclasses.replace(
        m,
        variants=m.variants[:variants],
        files={n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())},
        manifest_sha256=None,
    )
    write_manifest(root / MANIFEST, m)
    return root


def _table(n: int) -> bytes:
    return "".join(f"variant {k}: chain 0, 1, {k}\n" for k in range(n)).encode()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    old = _bundle(tmp_path / "old", {"seg-L0-3.tflite": SEGMENT, "model_data.h": _table(40), "old.txt": b"x"}, 3)
    new = _bundle(
        tmp_path / "new",
        {"seg-L0-3.tflite": SEGMENT, "seg-A-L4-S2.tflite": b"adapter" * 10, "model_data.h": _table(41)},
        4,
    )
    return old, new


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_patch_holds_only_what_the_old_bundle_lacks(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    data = make_patch(old, new)
    assert data == make_patch(old, new)  # reproducible bytes
    (tmp_path / "p.patch").write_bytes(data)
    patch = read_patch(tmp_path / "p.patch")
    sources = {name: f.source for name, f in patch.files.items()}
    assert sources == {
        "seg-L0-3.tflite": "base",
        "seg-A-L4-S2.tflite": "patch",
        "model_data.h": "delta",
        MANIFEST: "delta",
    }
    assert len(data) < len(SEGMENT)
    assert SEGMENT[:512] not in data


def test_applied_patch_gives_the_new_bundle_byte_for_byte(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    (tmp_path / "p.patch").write_bytes(make_patch(old, new))
    manifest = api.apply_patch(old, tmp_path / "p.patch")
    assert _tree(old) == _tree(new)
    assert len(manifest.variants) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".old.patch-")]  # no work directory left


def _refused(old: Path, patch: Path, match: str) -> None:
    before = _tree(old)
    with pytest.raises(BadInputError, match=match) as info:
        api.apply_patch(old, patch)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "\n" not in str(info.value)
    assert _tree(old) == before  # the bundle on disk is untouched


def test_a_patch_for_another_bundle_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    (tmp_path / "p.patch").write_bytes(make_patch(old, new))
    _refused(new, tmp_path / "p.patch", "applies to the bundle sealed")


def test_a_truncated_patch_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    data = make_patch(old, new)
    for cut in (10, 200, len(data) - 1):
        (tmp_path / "p.patch").write_bytes(data[:cut])
        _refused(old, tmp_path / "p.patch", "not a bundle patch|truncated")


def test_a_tampered_patch_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    data = make_patch(old, new)
    for where in (len(MAGIC) + 8 + 40, len(data) - 3):  # in patch.json, in the last blob
        tampered = bytearray(data)
        tampered[where] ^= 0x01
        (tmp_path / "p.patch").write_bytes(bytes(tampered))
        _refused(old, tmp_path / "p.patch", "altered")


def test_a_bundle_whose_files_changed_refuses_the_patch(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    (tmp_path / "p.patch").write_bytes(make_patch(old, new))
    (old / "seg-L0-3.tflite").write_bytes(SEGMENT[:-1] + b"\x00")
    _refused(old, tmp_path / "p.patch", "does not match its sha256")


def _rebuilt(old: bytes, ops: list[tuple[int, int, int]], blob: bytes) -> bytes:
    return b"".join(old[a : a + n] if k == COPY else blob[a : a + n] for k, a, n in ops)


def test_byte_delta_rebuilds_the_new_bytes_and_carries_only_what_is_new() -> None:
    old, new = _table(30), _table(31).replace(b"variant 7:", b"variant seven:")
    ops, blob = byte_delta(old, new)
    assert _rebuilt(old, ops, blob) == new and len(blob) < 80
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    fresh = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    moved = fresh[:100] + weights[5_000:15_000] + fresh[100:] + weights[:3]  # a cut moved: the same bytes elsewhere
    ops, blob = byte_delta(weights, moved)
    assert _rebuilt(weights, ops, blob) == moved and len(blob) <= 303
    for old, new in ((b"", b"abc"), (b"abc", b""), (weights[:10], weights[:10] * 9), (weights, weights)):
        ops, blob = byte_delta(old, new)
        assert _rebuilt(old, ops, blob) == new


def test_a_segment_cut_anew_travels_as_copies_of_the_old_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    front, back = (rng.integers(0, 256, 8_000, dtype=np.uint8).tobytes() for _ in range(2))
    old = _bundle(tmp_path / "old", {"seg-L4-H.tflite": b"head" + front + back}, 3)
    new = _bundle(tmp_path / "new", {"seg-L4.tflite": b"h4" + front, "seg-L5-H.tflite": b"h5" + back}, 4)
    data = make_patch(old, new)
    (tmp_path / "p.patch").write_bytes(data)
    patch = read_patch(tmp_path / "p.patch")
    assert {n: f.sources for n, f in patch.files.items() if n.endswith(".tflite")} == {
        "seg-L4.tflite": ("seg-L4-H.tflite",),
        "seg-L5-H.tflite": ("seg-L4-H.tflite",),
    }
    assert front[1000:1500] not in data and back[1000:1500] not in data and len(data) < 8_000  # 16 KB of segments
    api.apply_patch(old, tmp_path / "p.patch")
    assert _tree(old) == _tree(new)


def test_a_format_1_patch_with_json_ops_still_applies(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from restnet_compile.bundle.manifest import load_manifest
    from restnet_compile.bundle.patch import DATA, FileRecord, PatchRecord, patch_bytes

    old, new = pair
    files = {}
    blobs: dict[str, bytes] = {}
    for name in sorted([*load_manifest(new).files, MANIFEST]):
        data = (new / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if (old / name).is_file() and (old / name).read_bytes() == data:
            files[name] = FileRecord(sha, "base")
            continue
        blob = f"{len(blobs):04d}"
        blobs[blob] = data
        if (old / name).is_file():  # format 1: a delta copies from the file of its own name, ops as JSON lists
            files[name] = FileRecord(sha, "delta", blob=blob, ops=((DATA, 0, len(data)),))
        else:
            files[name] = FileRecord(sha, "patch", blob=blob)
    base, result = load_manifest(old).manifest_sha256, load_manifest(new).manifest_sha256
    assert base is not None and result is not None
    raw = patch_bytes(PatchRecord(1, base, result, files), blobs)
    assert b'"ops": [' in raw and b'"from"' not in raw and b'"ops_blob"' not in raw
    (tmp_path / "p.patch").write_bytes(raw)
    api.apply_patch(old, tmp_path / "p.patch")
    assert _tree(old) == _tree(new)


def _resealed(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """``data`` (a patch) with ``edit`` applied to its ``patch.json`` and the seal recomputed."""
    head = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : head], "big")
    record = json.loads(data[head : head + size])
    edit(record)
    raw = (json.dumps({**record, "patch_sha256": "0" * 64}, indent=2, sort_keys=True) + "\n").encode()
    raw = raw.replace(b"0" * 64, hashlib.sha256(raw).hexdigest().encode(), 1)
    return MAGIC + len(raw).to_bytes(8, "big") + raw + data[head + size :]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda r: r["blobs"]["0000"].__setitem__(1, "10"), r"'blobs\.0000\[1\]' must be int"),
        (lambda r: r["files"]["model_data.h"].__setitem__("from", "model_data.h"), r"'files\.model_data\.h\.from'"),
        (lambda r: r["files"]["model_data.h"].__setitem__("size", 3), r"'files\.model_data\.h\.size' is unknown"),
        (lambda r: r["files"]["model_data.h"].__setitem__("source", "cloud"), "unknown source 'cloud'"),
        (lambda r: r.pop("result_manifest_sha256"), "'result_manifest_sha256' is missing"),
        (lambda r: r.__setitem__("format_version", 3), "patch format 3 is not one this code reads"),
    ],
)
def test_a_sealed_patch_with_a_bad_field_is_refused_naming_it(
    pair: tuple[Path, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None], match: str
) -> None:
    old, new = pair
    (tmp_path / "p.patch").write_bytes(_resealed(make_patch(old, new), edit))
    with pytest.raises(BundleError, match=match):
        read_patch(tmp_path / "p.patch")
