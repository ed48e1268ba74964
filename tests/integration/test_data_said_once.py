"""What the data needed is said once, on stderr and in the report: an RGB, 3-class image folder with non-image files
and an undecodable image, built with the 1x28x28, 10-class demo models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from restnet_compile.data import load_dataset

NOTES = [
    "skipped 3 non-image files (images are .bmp, .gif, .jpeg, .jpg, .png)",
    "images are RGB, the models take 1 channel: converted to grey (ITU-R 601 weights)",
    "data has 3 of the model's 10 classes",
]


def _rgb_digits(root: Path, per_class: int = 40) -> Path:
    """Digits 0, 1 and 2 of mnist5k as RGB PNGs (equal channels), three stray files and one broken image."""
    ds = load_dataset("mnist5k")
    for digit in range(3):
        folder = root / f"digit{digit}"
        folder.mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(ds.labels == digit)[:per_class]):
            grey = np.round(ds.images[i, 0] * 255).astype(np.uint8)
            Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB").save(folder / f"{k:03d}.png")
    for name in ("README.txt", "labels.csv", "Thumbs.db"):
        (root / "digit1" / name).write_text("not an image\n")
    (root / "digit2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_conversions_and_skipped_files_are_said_once_on_stderr_and_in_the_report(tmp_path: Path) -> None:
    _rgb_digits(tmp_path / "digits")
    config = {
        "dataset": "digits",
        "bad_images": "skip",
        "plan": {"max_candidates": 1},
        "tune": {"epochs": 0, "match_epochs": 0},
        "selection": "feasible",
    }
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    args = ["--config", "build.yaml", "--profile", "phone", "--target", "onnx-fp32", "--out", "dist", "--no-cache"]
    proc = subprocess.run(
        [sys.executable, "-m", "restnet_compile", "build", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    broken = "left out 1 image that cannot be decoded (bad_images: skip): digits/digit2/broken.png"
    said = [NOTES[0], broken, *NOTES[1:]]
    stderr = " ".join(proc.stderr.split())  # the progress display wraps long lines
    for note in said:
        assert stderr.count(f"data: {note}") == 1, (note, proc.stderr)
    bundle = tmp_path / "dist" / "phone-onnx-fp32"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["data"]["notes"] == said
    report = (bundle / "report.md").read_text()
    assert all(f"- data: {note}\n" in report for note in said)
    assert (
        manifest["data"]["train"] + manifest["data"]["calib"] + manifest["data"]["val"] + manifest["data"]["test"]
        == 120
    )
