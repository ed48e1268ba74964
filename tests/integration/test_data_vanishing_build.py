"""A data file that vanishes while a build reads it: the build stops in one line, and a later build resumes from
what the failed one cached. Two builds through CKA, in this process (stages are swapped for probes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restnet_compile.data import load_dataset
from restnet_compile.errors import BadInputError


def _digit_folder(root: Path, n: int = 60) -> Path:
    """``n`` 28 x 28 grey PNGs of real digits, one class folder per digit (what the demo models take)."""
    ds = load_dataset("mnist5k")
    for k in np.arange(n) * (len(ds) // n):  # the file is sorted by label: every digit
        folder = root / f"c{int(ds.labels[k])}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((ds.images[k, 0] * 255).round().astype(np.uint8), mode="L").save(folder / f"{k:04d}.png")
    return root


def test_a_file_vanishing_mid_build_stops_it_in_one_line_and_a_later_build_resumes(  # type: ignore[no-untyped-def]
    cli_in_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restnet_compile.pipeline import driver

    root = _digit_folder(tmp_path / "digits")
    ds = load_dataset(str(root), (1, 28, 28))
    calib, val, test = 6, 6, 12
    order = np.random.default_rng(0).permutation(len(ds))
    victim = ds.images.files[order[calib + val + test]]  # type: ignore[union-attr]  # a training image
    saved = victim.read_bytes()
    real_cka = driver.family_cka

    def cka_then_delete(*args: object, **kwargs: object) -> object:
        out = real_cka(*args, **kwargs)  # type: ignore[arg-type]
        victim.unlink()  # after the folder was opened and CKA ran: tuning reads the training split
        return out

    monkeypatch.setattr(driver, "family_cka", cka_then_delete)
    cache, out = tmp_path / "cache", tmp_path / "dist"
    args = ("--data", f"folder:{root}", "--cache-dir", str(cache), "--quiet")
    r = cli_in_process("build", *args, "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"image {victim} vanished during the build" in r.stderr
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    assert not list((cache / "tmp").iterdir())  # no feature files left behind
    monkeypatch.setattr(driver, "family_cka", real_cka)
    victim.write_bytes(saved)

    def reached_tuning(*_a: object, **_k: object) -> None:
        raise BadInputError("reached tuning")

    monkeypatch.setattr(driver, "tune_stage", reached_tuning)
    again = cli_in_process(
        "build", "--data", f"folder:{root}", "--cache-dir", str(cache), "--events", "--out", str(out)
    )
    assert again.returncode == 2 and "error: reached tuning" in again.stderr  # the later build got as far
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert {"event": "cache", "stage": "cka", "reused": True} in events  # and reused the failed build's CKA
