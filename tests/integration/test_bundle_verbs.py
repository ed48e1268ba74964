"""The verbs around a bundle (inspect, verify, run, bench), the dynamic-adaptation example and bundle integrity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.benchlib.photo_digits import draw_digit, write_set
from restnet_compile import api
from restnet_compile._util.atomic import umask_mode
from restnet_compile.bundle.manifest import ImageInfo, load_manifest, write_manifest
from restnet_compile.data import load_dataset, make_splits

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restnet_compile", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture()
def bundle_copy(phone_bundle: api.BuildResult, tmp_path: Path) -> Path:
    dest = tmp_path / phone_bundle.bundle_dir.name
    shutil.copytree(phone_bundle.bundle_dir, dest)
    return dest


def _digit_png(path: Path, index: int = 0) -> tuple[Path, int]:
    test = make_splits(load_dataset("mnist5k"), seed=0).test
    Image.fromarray((test.images[index, 0] * 255).round().astype(np.uint8), mode="L").save(path)
    return path, int(test.labels[index])


def test_inspect_prints_the_variant_table(phone_bundle: api.BuildResult) -> None:
    proc = _cli("inspect", str(phone_bundle.bundle_dir))
    assert proc.returncode == 0, proc.stderr
    assert "| variant | stitch |" in proc.stdout and "L0-S0" in proc.stdout
    data = json.loads(_cli("inspect", str(phone_bundle.bundle_dir), "--json").stdout)
    assert data["files"] == phone_bundle.manifest.files
    assert data == json.loads((phone_bundle.bundle_dir / "manifest.json").read_text()), "--json is the file's JSON"


def test_verify_passes_on_a_good_bundle(phone_bundle: api.BuildResult) -> None:
    proc = _cli("verify", str(phone_bundle.bundle_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    checks = json.loads(proc.stdout)
    shipped = {v.id for v in phone_bundle.manifest.shipped()}
    assert {c["variant"] for c in checks} == shipped
    assert all(c["ok"] and c["top1_same_as_deployed"] == 1.0 for c in checks)


@pytest.mark.parametrize("victim", ["variants.tflite", "manifest.json", "report.md", "reference.npz"])
def test_verify_detects_a_flipped_byte_in_any_file(bundle_copy: Path, victim: str) -> None:
    path = bundle_copy / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    proc = _cli("verify", str(bundle_copy))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def test_verify_detects_a_missing_file(bundle_copy: Path) -> None:
    (bundle_copy / "variants.tflite").unlink()
    proc = _cli("verify", str(bundle_copy))
    assert proc.returncode == 2 and "variants.tflite is missing" in proc.stderr


def test_run_classifies_a_png_within_a_budget(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    png, label = _digit_png(tmp_path / "digit.png")
    fastest = min(phone_bundle.manifest.shipped(), key=lambda v: v.latency_ms)
    proc = _cli(
        "run", str(phone_bundle.bundle_dir), "--input", str(png), "--budget", f"{fastest.latency_ms}ms", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["variant"] == fastest.id and out["label"] == label and len(out["scores"]) == 10
    assert out["runs"] == 20 and out["latency_ms"] > 0 and out["first_run_ms"] > 0
    line = _cli("run", str(phone_bundle.bundle_dir), "--input", str(png), "--variant", fastest.id).stdout
    assert line.startswith(f"class {label} by variant {fastest.id} in ") and "(steady: median of 20 runs" in line
    assert "first run" in line


def test_run_reads_drawn_photos_through_the_recorded_policy(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    """Photographed-looking digits on paper (300 x 200 RGB): the demo bundle's MNIST policy prepares them."""
    image = phone_bundle.manifest.input.image
    assert image is not None and (image.invert, image.fit_object) == ("light-background", 20)
    right = 0
    for path, digit in write_set(tmp_path, per_digit=1, seed=2):
        proc = _cli("run", str(phone_bundle.bundle_dir), "--input", str(path), "--json")
        assert proc.returncode == 0 and "XNNPACK" not in proc.stderr, proc.stderr
        right += json.loads(proc.stdout)["label"] == digit
    assert right >= 8, f"{right}/10 drawn photos read right"


def test_run_refuses_another_size_where_no_policy_resizes(bundle_copy: Path, tmp_path: Path) -> None:
    manifest = load_manifest(bundle_copy)
    plain = ImageInfo(resize=None, crop=None, interpolation="bilinear")
    write_manifest(bundle_copy / "manifest.json", replace(manifest, input=replace(manifest.input, image=plain)))
    big = tmp_path / "big.jpg"
    draw_digit(7, seed=0, pen=True).save(big)
    proc = _cli("run", str(bundle_copy), "--input", str(big))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "is 3x200x300 (CxHxW); the bundle takes 1x28x28 (grey, pixels in [0, 1])" in proc.stderr
    assert "PIL.Image.open(f).convert('L').resize((28, 28))" in proc.stderr


def test_run_refuses_an_impossible_budget(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    png, _ = _digit_png(tmp_path / "digit.png")
    proc = _cli("run", str(phone_bundle.bundle_dir), "--input", str(png), "--budget", "1us")
    assert proc.returncode == 3 and "closest is" in proc.stderr
    proc = _cli("run", str(phone_bundle.bundle_dir), "--input", str(png), "--budget", "-5ms")
    assert proc.returncode == 2 and "'-5ms' must be greater than zero, e.g. '20ms'" in proc.stderr


def test_inspect_and_verify_read_the_archive(phone_bundle: api.BuildResult) -> None:
    proc = _cli("inspect", str(phone_bundle.archive))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _cli("inspect", str(phone_bundle.bundle_dir)).stdout
    proc = _cli("verify", str(phone_bundle.archive), "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == len(phone_bundle.manifest.shipped())


def test_published_files_have_the_umask_mode(phone_bundle: api.BuildResult) -> None:
    files = [p for p in phone_bundle.bundle_dir.rglob("*") if p.is_file()] + [phone_bundle.archive]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(umask_mode())}, modes
    assert oct(phone_bundle.bundle_dir.stat().st_mode & 0o777) == oct(umask_mode(directory=True))


def test_bench_reports_every_variant(phone_bundle: api.BuildResult) -> None:
    proc = _cli("bench", str(phone_bundle.bundle_dir), "--warmup", "2", "--runs", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    shipped = {v.id for v in phone_bundle.manifest.shipped()}
    assert {r["variant"] for r in rows} == shipped
    assert all(0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["max_ms"] for r in rows)


def test_dynamic_adaptation_example_switches_variants(phone_bundle: api.BuildResult) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "dynamic_adaptation.py"),
            str(phone_bundle.bundle_dir),
            "--steps",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 + 16 + 1
    used = {line.split()[4] for line in lines[1:-1]}
    assert len(used) >= 2, "the budget trace should make the runtime switch"
    assert "switches over 16 steps" in lines[-1] and int(lines[-1].split()[0]) >= 1


def test_calibrate_host_times_every_variant_here(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    from restnet_compile.config.device import load_profile

    out = tmp_path / "host-calibrated.yaml"
    args = ["--profile", "host", "--bundle", str(phone_bundle.bundle_dir), "--out", str(out)]
    proc = _cli("calibrate", *args, "--warmup", "1", "--runs", "3")
    assert proc.returncode == 0, proc.stderr
    shipped = {v.id for v in phone_bundle.manifest.variants if v.selected}
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ") and " ms |" in line]
    rows = {line.split("|")[1].strip() for line in table}
    assert rows == shipped
    csv_rows = out.with_suffix(".csv").read_text().splitlines()
    assert csv_rows[0].startswith("variant,count,") and len(csv_rows) == 1 + len(shipped)
    assert load_profile(out).latency_model.efficiency > 0


def test_calibrate_host_times_chained_variants_as_the_runtime_runs_them(
    tflm_bundle: api.BuildResult, tmp_path: Path
) -> None:
    out = tmp_path / "host-from-chains.yaml"
    r = api.calibrate("host", tflm_bundle.bundle_dir, out, warmup=1, runs=3)
    chained = {v.id for v in tflm_bundle.manifest.shipped() if v.chain}
    assert chained and chained <= set(r.measured)  # every segment bundle variant is a chain: all are timed
    longest = max(chained, key=lambda vid: len(tflm_bundle.manifest.variant(vid).chain or ()))
    assert len(tflm_bundle.manifest.variant(longest).chain or ()) >= 2
    assert set(r.predicted) == set(r.measured) and out.is_file() and out.with_suffix(".csv").is_file()


def test_calibrate_host_refuses_a_bundle_without_tflite(onnx_int8_bundle: api.BuildResult, tmp_path: Path) -> None:
    out = tmp_path / "host-calibrated.yaml"
    proc = _cli("calibrate", "--profile", "host", "--bundle", str(onnx_int8_bundle.bundle_dir), "--out", str(out))
    assert proc.returncode == 2
    assert "has no .tflite variants to time on this machine" in proc.stderr
    assert not out.exists() and not out.with_suffix(".csv").exists()
