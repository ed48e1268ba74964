"""Host-side tools around a built bundle: inspect, verify, predict on an image file, benchmark."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restnet_compile.errors import BadInputError, InfeasibleError, ParityError
from restnet_compile.runtime import Bundle, BundleError, VariantInfo
from restnet_compile.runtime.benchmark import VariantTiming, benchmark
from restnet_compile.runtime.verify import VariantCheck, verify_reference


def open_bundle(path: Path) -> Bundle:
    """Open a bundle; a missing, altered or unsafe file becomes a one-line bad-input error (exit code 2)."""
    try:
        return Bundle.open(path)
    except BundleError as exc:
        raise BadInputError(str(exc)) from None


def verify(path: Path) -> list[VariantCheck]:
    """Checksums, then the stored reference inputs through the device runtime.

    Raises:
        BadInputError: a file is missing or altered (exit code 2).
        ParityError: a variant no longer reproduces its recorded outputs (exit code 4).
    """
    bundle = open_bundle(path)
    try:
        checks = verify_reference(bundle)
    except BundleError as exc:
        raise BadInputError(str(exc)) from None
    failed = [c for c in checks if not c.ok]
    if failed:
        c = failed[0]
        raise ParityError(
            f"variant {c.variant} does not reproduce its recorded outputs: top-1 same on "
            f"{c.top1_same_as_deployed:.0%}, max |diff| {c.max_abs_diff_deployed:.3g}"
        )
    return checks


def load_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Read a PNG/JPEG (or ``.npy``) as ``C x H x W`` float32 in [0, 1], refusing a size or channel mismatch."""
    c, h, w = shape
    if not path.is_file():
        raise BadInputError(f"input {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(path)
            img.load()
        except (UnidentifiedImageError, OSError):
            raise BadInputError(f"input {path} is not an image PIL can read") from None
        channels = {"L": 1, "RGB": 3}.get(img.mode)
        if channels is None:
            raise BadInputError(f"input {path}: image mode {img.mode} unsupported; valid modes: L (grey), RGB")
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.shape != (c, h, w):
        raise BadInputError(
            f"input {path} is {arr.shape[0]}x{arr.shape[1]}x{arr.shape[2]} (CxHxW); the bundle takes {c}x{h}x{w}"
        )
    return np.clip(arr, 0.0, 1.0)


@dataclass(frozen=True)
class Prediction:
    """One prediction and the variant that made it."""

    variant: str
    label: int
    scores: list[float]
    latency_ms: float


def predict(path: Path, image: Path, budget_ms: float | None = None, variant: str | None = None) -> Prediction:
    """Classify ``image`` with ``variant``, or with the most accurate variant within ``budget_ms``.

    Raises:
        InfeasibleError: nothing meets the budget (the message names the closest variant).
    """
    import time

    bundle = open_bundle(path)
    x = load_image(image, tuple(bundle.manifest["input"]["shape"]))
    try:
        chosen: VariantInfo = bundle.get(variant) if variant else bundle.select(latency_ms=budget_ms)
    except BundleError as exc:
        raise (BadInputError if variant else InfeasibleError)(str(exc)) from None
    start = time.perf_counter()
    logits = bundle.run(x, chosen.id)[0]
    elapsed = (time.perf_counter() - start) * 1e3
    return Prediction(chosen.id, int(logits.argmax()), [round(float(s), 4) for s in logits], round(elapsed, 3))


def bench(path: Path, warmup: int = 10, runs: int = 100) -> list[VariantTiming]:
    """Latency of every shipped variant on this machine."""
    return benchmark(open_bundle(path), warmup, runs)


def inspect(path: Path) -> dict:
    """The manifest of a bundle after its checksums pass."""
    bundle = open_bundle(path)
    return json.loads(json.dumps(bundle.manifest))
