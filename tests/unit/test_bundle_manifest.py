"""The typed manifest: byte-exact round trip, strict fields, the seal, copies instead of mutation, a light import."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from restnet_compile.bundle.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    SEAL_FIELD,
    BundleError,
    Manifest,
    Parity,
    load_manifest,
    read_manifest,
    seal,
)
from tests.manifests import SAMPLE, sample_manifest


def _data() -> dict[str, Any]:
    return json.loads(SAMPLE.read_bytes())


def test_a_real_manifest_round_trips_byte_for_byte() -> None:
    raw = SAMPLE.read_bytes()
    manifest = read_manifest(raw)
    assert manifest.format_version == 1 and FORMAT_VERSION == 3  # a format-1 manifest still reads, unchanged
    assert manifest.to_json_dict() == json.loads(raw)
    assert seal(manifest) == raw
    assert seal(Manifest.from_json_dict(json.loads(raw))) == raw
    assert json.dumps(manifest.to_json_dict(), sort_keys=True) == json.dumps(json.loads(raw), sort_keys=True)


def test_fields_are_typed_attributes() -> None:
    m = sample_manifest()
    assert m.input.shape == (1, 28, 28) and m.input.layout == "NHWC"
    assert m.profile.name == "phone" and m.profile.device_class == "phone"
    assert {v.id for v in m.shipped()} <= {v.id for v in m.variants}
    stitched = next(v for v in m.variants if v.kind == "stitched")
    assert stitched.stitch.front_block is not None and stitched.tune is not None
    anchor = m.variant("large")
    assert anchor.stitch.front_block is None and anchor.tune is None
    assert "front_block" not in m.to_json_dict()["variants"][0]["stitch"], "absent stays absent"
    with pytest.raises(BundleError, match="unknown variant 'nope'; valid choices: large, small"):
        m.variant("nope")


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("colour", "red", "manifest field 'colour' is unknown; valid fields here: bundle_model_bytes, config,"),
        ("profile.colour", 1, "manifest field 'profile.colour' is unknown"),
        ("variants.2.stitch.colour", 1, "manifest field 'variants[2].stitch.colour' is unknown"),
        ("profile.soc", _DELETE, "manifest field 'profile.soc' is missing"),
        ("variants.0.parity", _DELETE, "manifest field 'variants[0].parity' is missing"),
        ("files", _DELETE, "manifest field 'files' is missing"),
        ("variants.1.flops", "many", "manifest field 'variants[1].flops' must be int, got 'many'"),
        ("variants.1.selected", 1, "manifest field 'variants[1].selected' must be bool, got 1"),
        ("variants.1.flops", True, "manifest field 'variants[1].flops' must be int, got True"),
        ("seed", None, "manifest field 'seed' is null"),
        ("input.shape", [1, 28], "manifest field 'input.shape' must have 3 entries, got 2"),
        ("models", [], "manifest field 'models' must be an object"),
        ("format_version", 4, "format_version 4 is not one this restnet-compile reads (1, 2, 3)"),
        ("format_version", _DELETE, "format_version None is not one"),
    ],
)
def test_a_bad_field_is_named(path: str, value: Any, needle: str) -> None:
    data = _data()
    _set(data, path, value)
    with pytest.raises(BundleError, match=re.escape(needle)):
        Manifest.from_json_dict(data)


def test_a_manifest_is_a_json_object() -> None:
    with pytest.raises(BundleError, match="expected a JSON object, got list"):
        Manifest.from_json_dict([_data()])  # type: ignore[arg-type]


def test_fields_earlier_format_1_manifests_lack_are_optional() -> None:
    data = _data()
    for path in ("selection", "target.float_ops", "bundle_model_bytes", SEAL_FIELD):
        _set(data, path, _DELETE)
    m = Manifest.from_json_dict(data)
    assert m.selection is None and m.target.float_ops is None and m.bundle_model_bytes is None
    assert m.to_json_dict() == data, "an absent optional field is written absent, never as null"
    _set(data, "target.float_ops", None)
    with pytest.raises(BundleError, match=re.escape("'target.float_ops' is null")):
        Manifest.from_json_dict(data)


def test_the_seal_is_checked_on_every_read(tmp_path: Any) -> None:
    raw = SAMPLE.read_bytes()
    tampered = raw.replace(b'"seed": 0', b'"seed": 1')
    assert tampered != raw
    with pytest.raises(BundleError, match="does not match its own manifest_sha256: it was altered"):
        read_manifest(tampered)
    unsealed = json.dumps({k: v for k, v in json.loads(raw).items() if k != SEAL_FIELD}).encode()
    with pytest.raises(BundleError, match="no valid manifest_sha256 seal"):
        read_manifest(unsealed)
    resealed = seal(dataclasses.replace(read_manifest(raw), seed=1))
    assert read_manifest(resealed).seed == 1  # a consistent manifest written by the one writer
    (tmp_path / MANIFEST).write_bytes(tampered)
    with pytest.raises(BundleError, match="altered"):
        load_manifest(tmp_path)
    with pytest.raises(BundleError, match=re.escape("not a bundle: cannot read manifest.json")):
        load_manifest(tmp_path / "nowhere")


def test_changes_are_copies() -> None:
    m = sample_manifest()
    vid = m.shipped()[0].id
    parity = Parity(max_abs_diff=0.5, top1_agreement=0.25, accuracy_torch=0.125)
    changed = m.with_parity({vid: parity}, {vid: 0.75}).with_files({"x.bin": "0" * 64}).with_model_bytes(7)
    assert changed.variant(vid).parity == parity and changed.variant(vid).accuracy_deployed == 0.75
    assert changed.files == {"x.bin": "0" * 64} and changed.bundle_model_bytes == 7
    assert changed.manifest_sha256 is None, "a changed manifest no longer carries the old file's seal"
    assert m.variant(vid).parity != parity and m.files != changed.files and m.manifest_sha256 is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.seed = 3  # type: ignore[misc]


def test_latency_terms_and_signatures_by_file() -> None:
    m = sample_manifest()
    assert set(m.latency_terms()) == {v.id for v in m.variants}
    assert all(len(t) >= 2 for terms in m.latency_terms().values() for t in terms)
    assert m.signatures_by_file() == {"variants.tflite": [v.id for v in m.shipped()]}


_LOADED = "import sys; {imports}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {{{names}}}))"


def _heavy_modules_after(imports: str, names: tuple[str, ...]) -> list[str]:
    code = _LOADED.format(imports=imports, names=", ".join(repr(n) for n in names))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.replace("'", '"'))


@pytest.mark.parametrize(
    ("imports", "banned"),
    [
        ("import restnet_compile.bundle.manifest", ("numpy", "torch", "tensorflow", "pydantic", "yaml")),
        ("import restnet_compile.runtime", ("pydantic", "torch", "tensorflow", "onnx2tf")),
    ],
)
def test_the_manifest_and_runtime_import_light(imports: str, banned: tuple[str, ...]) -> None:
    assert _heavy_modules_after(imports, banned) == []
    # the check can fail: importing one of them first is seen
    assert _heavy_modules_after(f"import {banned[0]}; {imports}", banned) == [banned[0]]
