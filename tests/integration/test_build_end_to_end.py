"""End to end: build a real bundle from the demo pair and run every variant with LiteRT / ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile import api
from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.units import format_size
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import load_dataset, make_splits
from restnet_compile.models import create_model
from restnet_compile.runtime import Bundle
from tests.integration.conftest import FAST

REPORTS = ("reference.npz", "report.md", "report.html", "pareto.png", "cka.png")


@pytest.fixture(scope="module")
def tflite_build(phone_bundle: api.BuildResult) -> api.BuildResult:
    return phone_bundle


def test_bundle_layout_and_checksums(tflite_build: api.BuildResult) -> None:
    root = tflite_build.bundle_dir
    names = sorted(p.name for p in root.iterdir())
    assert names == sorted(["manifest.json", "variants.tflite", *REPORTS])
    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest["files"]) == {"variants.tflite", *REPORTS}
    for name, digest in manifest["files"].items():
        assert sha256_file(root / name) == digest
    assert tflite_build.archive.is_file() and tflite_build.archive.stat().st_size > 10_000
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_every_signature_runs_in_litert_and_matches_torch(tflite_build: api.BuildResult) -> None:
    from ai_edge_litert.interpreter import Interpreter

    shipped = tflite_build.manifest.shipped()
    assert {"large", "small"} <= {v.id for v in shipped}
    assert any(v.kind == "stitched" for v in shipped), "no stitched variant was exported"
    interp = Interpreter(model_path=str(tflite_build.bundle_dir / "variants.tflite"))
    assert set(interp.get_signature_list()) == {v.signature for v in shipped}
    test = make_splits(load_dataset("mnist5k"), seed=0).test
    images, labels = test.images[:200], test.labels[:200]
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    for v in shipped:
        runner = interp.get_signature_runner(v.signature)
        in_d, out_d = runner.get_input_details()["input"], runner.get_output_details()["logits"]
        assert in_d["dtype"] == np.int8 and out_d["dtype"] == np.int8  # full integer, int8 I/O
        (s_in, z_in), (s_out, z_out) = in_d["quantization"], out_d["quantization"]
        preds = []
        for img in images:
            q = np.clip(np.round(img.transpose(1, 2, 0)[None] / s_in + z_in), -128, 127).astype(np.int8)
            preds.append(int(((runner(input=q)["logits"].astype(np.float32) - z_out) * s_out).argmax()))
        if v.kind == "stitched":
            continue  # stitched modules are compared through the runtime below (adapters live in the build)
        module = large if v.id == "large" else small
        with torch.no_grad():
            ref = module(torch.from_numpy(images)).argmax(1).numpy()
        assert (np.array(preds) == ref).mean() >= 0.97
        assert (np.array(preds) == labels).mean() >= 0.9


def test_manifest_records_parity_and_accuracy(tflite_build: api.BuildResult) -> None:
    for v in tflite_build.manifest.variants:
        assert v.flops > 0 and v.params > 0 and v.stitch.description
        if v.selected:
            assert v.parity is not None and v.parity.top1_agreement >= 0.98
            assert v.accuracy_deployed is not None and abs(v.accuracy_deployed - v.accuracy_fp32) <= 0.01
            assert v.file == "variants.tflite"
        else:
            assert v.reasons, "a dropped variant must say why"
    stitched = [v for v in tflite_build.manifest.variants if v.kind == "stitched"]
    assert len(stitched) == 2 and all(v.stitch.adapter == "conv-bn-relu" for v in stitched)  # the default
    assert len(tflite_build.manifest.stitching.cka) == 6


def test_runtime_switches_variants_on_one_interpreter(tflite_build: api.BuildResult) -> None:
    bundle = Bundle.open(tflite_build.bundle_dir)
    x = make_splits(load_dataset("mnist5k"), seed=0).test.images[:5]
    for v in bundle.variants:
        assert bundle.run(x, v.id).shape == (5, 10)
    assert len(bundle._backend.interpreters) == 1  # type: ignore[attr-defined]  # one interpreter, every signature
    fastest = min(bundle.variants, key=lambda v: v.latency_ms)
    assert bundle.select(latency_ms=fastest.latency_ms).id == fastest.id


def test_stitched_signature_is_its_own_network(tflite_build: api.BuildResult) -> None:
    """A stitched signature reproduces its recorded accuracy and differs from both anchors."""
    bundle = Bundle.open(tflite_build.bundle_dir)
    test = make_splits(load_dataset("mnist5k"), seed=0).test
    v = next(v for v in tflite_build.manifest.shipped() if v.kind == "stitched")
    logits = bundle.run(test.images, v.id)
    assert round(float((logits.argmax(1) == test.labels).mean()), 4) == v.accuracy_deployed
    for anchor in ("large", "small"):
        assert not np.allclose(logits[:50], bundle.run(test.images[:50], anchor))


def test_onnx_target_shares_weights_and_matches_torch(tmp_path: Path) -> None:
    cfg = BuildConfig.model_validate({"profile": "jetson", "target": "onnx-fp32", **FAST})
    result = api.build(cfg, tmp_path)
    root = result.bundle_dir
    shipped = result.manifest.shipped()
    assert {f"{v.id}.onnx" for v in shipped} | {"weights.bin", *REPORTS} == set(result.manifest.files)
    for v in shipped:
        assert v.parity is not None and v.parity.max_abs_diff <= 1e-4
    # shared blocks are stored once: weights.bin holds about large + small + adapters, not the sum of variants
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    fl, fs = large.feature_specs(), small.feature_specs()
    cuts = [(v.stitch.front_block, v.stitch.back_block) for v in shipped if v.kind == "stitched"]
    assert all(i is not None and j is not None for i, j in cuts)
    adapters = sum(fl[i].channels * fs[j].channels + fs[j].channels for i, j in cuts)
    unique = 4 * (sum(p.numel() for p in large.parameters()) + sum(p.numel() for p in small.parameters()) + adapters)
    size = (root / "weights.bin").stat().st_size
    assert size <= 1.05 * unique
    assert size < 0.95 * 4 * sum(v.params for v in shipped)


def test_cli_build_prints_table_and_bundle(tmp_path: Path) -> None:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("plan: {max_candidates: 1}\ntune: {epochs: 1}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "restnet_compile",
            "build",
            "--profile",
            "jetson",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| variant | stitch |" in proc.stdout and "bundle:" in proc.stdout
    assert (tmp_path / "out" / "jetson-onnx-fp16" / "manifest.json").is_file()


def test_rebuild_in_same_process_is_byte_identical(
    tflite_build: api.BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cache=False: the rebuild computes every stage again instead of being served from the build cache. A relative
    # output path, as `make demo` gives (`--out dist`): onnx2tf runs in its work dir, which must not be relative.
    monkeypatch.chdir(tmp_path)
    again = api.build(BuildConfig.model_validate({"profile": "phone", **FAST}), Path("dist"), cache=False)
    assert again.cache.stages == ()
    assert again.archive.read_bytes() == tflite_build.archive.read_bytes()
    assert (again.bundle_dir / "manifest.json").read_bytes() == (tflite_build.bundle_dir / "manifest.json").read_bytes()


def test_reports_show_the_table_and_both_plots(tflite_build: api.BuildResult) -> None:
    root = tflite_build.bundle_dir
    page = (root / "report.html").read_text()
    assert "<table>" in page and 'src="pareto.png"' in page and 'src="cka.png"' in page
    for v in tflite_build.manifest.variants:
        assert f"<td>{v.id}</td>" in page
    md = (root / "report.md").read_text()
    assert "| variant | stitch |" in md and "](pareto.png)" in md
    assert "| val acc ± SE | test acc |" in md and "<th>val acc ± SE</th>" in page
    size = (root / "variants.tflite").stat().st_size
    assert f"- model file(s): variants.tflite ({format_size(size)}); seed 0" in md
    assert f"Model file(s): variants.tflite ({format_size(size)})." in page
    for png in ("pareto.png", "cka.png"):
        assert (root / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (root / png).stat().st_size > 10_000


def test_cli_build_json_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("plan: {max_candidates: 1}\ntune: {epochs: 1}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "restnet_compile",
            "build",
            "--profile",
            "jetson",
            "--target",
            "onnx-fp32",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["profile"] == "jetson" and summary["target"] == "onnx-fp32"
    assert {v["id"] for v in summary["shipped"]} and Path(summary["archive"]).is_file()
    assert "tuning adapters" in proc.stderr  # progress bars go to stderr, never into the JSON


def test_a_model_the_runtime_cannot_prepare_is_a_parity_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteRT's XNNPACK can refuse an exported graph (seen with a 224 px ResNet-50 -> MobileNetV3 int8 bundle)."""
    from restnet_compile.errors import ParityError

    def refuse(self: Bundle, images: np.ndarray, variant: str) -> np.ndarray:
        raise RuntimeError(
            "failed to create XNNPACK runtime\nNode number 112 (TfLiteXNNPackDelegate) failed to prepare."
        )

    monkeypatch.setattr(Bundle, "run", refuse)
    with pytest.raises(ParityError, match=r"variant \S+ does not run on litert \(tflite-int8\): failed .* prepare\.$"):
        api.build(BuildConfig.model_validate({"profile": "phone", **FAST}), tmp_path)
    assert not any(tmp_path.iterdir())
