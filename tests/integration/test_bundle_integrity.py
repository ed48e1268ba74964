"""Bundle integrity: any single flipped byte in any file or the manifest is caught on open; escaping paths refused.

Every bundle kind the default run builds is checked (tflite-int8 for the phone, tflm-int8 for the MCU with its C
arrays, onnx-int8 with its shared weights file). The manifest is sealed with its own sha256 (see
``bundle.manifest.seal``), so it is checked at every byte position; the other files at their first, middle
and last byte plus seeded random positions, each with a random bit flipped.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.bundle.manifest import MANIFEST, Manifest, read_manifest, seal
from restnet_compile.runtime.bundle import Bundle, BundleError

KINDS = ("phone_bundle", "tflm_bundle", "onnx_int8_bundle")
RANDOM_POSITIONS = 12


def _copy(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Path:
    built: api.BuildResult = request.getfixturevalue(kind)
    return Path(shutil.copytree(built.bundle_dir, tmp_path / built.bundle_dir.name))


def _positions(size: int, rng: random.Random) -> list[int]:
    return sorted({0, size // 2, size - 1, *(rng.randrange(size) for _ in range(RANDOM_POSITIONS))})


def _reseal(root: Path, edit: dict) -> None:
    """Rewrite the manifest with ``edit`` applied and a recomputed seal (a consistent but malicious manifest)."""
    manifest = json.loads((root / MANIFEST).read_text())
    manifest.update(edit)
    (root / MANIFEST).write_bytes(seal(Manifest.from_json_dict(manifest)))


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_byte_in_any_bundle_file_is_refused_on_open(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> None:
    root = _copy(request, kind, tmp_path)
    names = [MANIFEST, *json.loads((root / MANIFEST).read_text())["files"]]
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(names) == on_disk, "every file in the bundle must be covered by the manifest"
    Bundle.open(root)  # the untouched copy opens
    rng = random.Random(f"{kind}-flips")
    flips = 0
    for name in names:
        path = root / name
        original = path.read_bytes()
        for pos in _positions(len(original), rng):
            data = bytearray(original)
            data[pos] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
            with pytest.raises(BundleError):
                Bundle.open(root)
            flips += 1
        path.write_bytes(original)
    Bundle.open(root)  # restored
    assert flips >= 3 * len(names)
    print(f"{kind}: {flips} flipped bytes in {len(names)} files, all refused")


def test_every_byte_of_the_manifest_is_sealed(phone_bundle: api.BuildResult) -> None:
    raw = (phone_bundle.bundle_dir / MANIFEST).read_bytes()
    assert read_manifest(raw).files == phone_bundle.manifest.files
    rng = random.Random("manifest")
    for pos in range(len(raw)):
        for bit in (0, rng.randrange(1, 8)):
            data = bytearray(raw)
            data[pos] ^= 1 << bit
            with pytest.raises(BundleError):
                read_manifest(bytes(data))
    print(f"manifest: {2 * len(raw)} flipped bytes (every position, two bits each), all refused")


def test_seal_is_byte_stable_and_matches_the_written_manifest(phone_bundle: api.BuildResult) -> None:
    raw = (phone_bundle.bundle_dir / MANIFEST).read_bytes()
    manifest = read_manifest(raw)
    assert seal(manifest) == raw == seal(Manifest.from_json_dict(json.loads(raw))) == seal(phone_bundle.manifest)
    assert manifest.to_json_dict() == json.loads(raw)


@pytest.mark.parametrize(
    "name", ["../escape.bin", "/etc/passwd", "sub/../../escape.bin", "/tmp/variants.tflite"], ids=str
)
def test_manifest_naming_a_file_outside_the_bundle_is_refused(
    phone_bundle: api.BuildResult, tmp_path: Path, name: str
) -> None:
    root = Path(shutil.copytree(phone_bundle.bundle_dir, tmp_path / "b"))
    files = json.loads((root / MANIFEST).read_text())["files"]
    _reseal(root, {"files": {**files, name: "0" * 64}})
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(root)


@pytest.mark.parametrize("name", ["/etc/passwd", "../variants.tflite"], ids=str)
def test_variant_file_outside_the_bundle_is_refused(phone_bundle: api.BuildResult, tmp_path: Path, name: str) -> None:
    root = Path(shutil.copytree(phone_bundle.bundle_dir, tmp_path / "b"))
    variants = json.loads((root / MANIFEST).read_text())["variants"]
    next(v for v in variants if v["selected"])["file"] = name
    _reseal(root, {"variants": variants})
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(root)


def test_cli_refuses_an_absolute_path_and_a_flip_with_one_line(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    root = Path(shutil.copytree(phone_bundle.bundle_dir, tmp_path / "b"))
    files = json.loads((root / MANIFEST).read_text())["files"]
    _reseal(root, {"files": {**files, "/etc/passwd": "0" * 64}})
    cmd = [sys.executable, "-m", "restnet_compile"]
    proc = subprocess.run([*cmd, "verify", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "outside the bundle" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    raw = bytearray(seal(read_manifest((phone_bundle.bundle_dir / MANIFEST).read_bytes())))
    raw[raw.index(b'"accuracy_fp32"') + 20] ^= 0x01  # a digit of a number: still valid JSON, caught by the seal
    (root / MANIFEST).write_bytes(bytes(raw))
    proc = subprocess.run([*cmd, "inspect", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "altered" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _cli_verify(root: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "restnet_compile", "verify", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _chained(root: Path) -> tuple[list, list]:
    data = json.loads((root / MANIFEST).read_text())
    return data["variants"], data["segments"]


def test_a_chain_naming_a_missing_segment_is_one_line_and_exit_2(tflm_bundle: api.BuildResult, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tflm_bundle.bundle_dir, tmp_path / "b"))
    variants, _ = _chained(root)
    shipped = next(v for v in variants if v["selected"])
    shipped["chain"] = [*shipped["chain"][:-1], "S9-H"]
    _reseal(root, {"variants": variants})
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    proc = _cli_verify(root)
    assert proc.returncode == 2 and "unknown segment 'S9-H'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before


@pytest.mark.parametrize("edit", ["shape", "scale"])
def test_segments_whose_boundaries_disagree_are_one_line_and_exit_2(
    tflm_bundle: api.BuildResult, tmp_path: Path, edit: str
) -> None:
    root = Path(shutil.copytree(tflm_bundle.bundle_dir, tmp_path / "b"))
    variants, segments = _chained(root)
    chain = next(v["chain"] for v in variants if v["selected"] and len(v["chain"]) > 1)
    second = next(s for s in segments if s["id"] == chain[1])
    if edit == "shape":  # the manifest's chain no longer fits together
        second["input"]["shape"] = [*second["input"]["shape"][:-1], second["input"]["shape"][-1] + 1]
        expected = f"segment {chain[0]} gives"
    else:  # the manifest no longer describes the segment's file
        second["input"]["scale"] = second["input"]["scale"] * 2
        expected = f"segment {chain[1]}: its file's input"
    _reseal(root, {"segments": segments})
    proc = _cli_verify(root)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
