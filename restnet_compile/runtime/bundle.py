"""Open a bundle, check its checksums, choose a variant by budget and run it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile.bundle.manifest import MANIFEST, BundleError, Manifest, read_manifest
from restnet_compile.runtime.backends import Backend, LiteRTBackend, OnnxRuntimeBackend


@dataclass(frozen=True)
class VariantInfo:
    """What the runtime knows about one shipped variant (from the manifest)."""

    id: str
    signature: str
    file: str
    latency_ms: float
    ram_bytes: int
    accuracy: float | None


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if Path(name).is_absolute() or root.resolve() not in path.parents:
        raise BundleError(f"manifest names file {name!r} outside the bundle")
    return path


class Bundle:
    """A bundle opened on the device. Use :meth:`open`."""

    def __init__(self, root: Path, manifest: Manifest, backend: Backend) -> None:
        self.root = root
        self.manifest = manifest
        self._backend = backend
        self.layout: str = manifest.input.layout
        self.variants = [
            VariantInfo(v.id, v.signature, v.file, v.latency_ms, v.ram_bytes, v.accuracy_deployed)
            for v in manifest.shipped()
            if v.signature is not None and v.file is not None
        ]

    @classmethod
    def open(cls, path: str | Path, threads: int = 1) -> Bundle:
        """Open the bundle directory ``path`` after checking every file against the manifest's sha256.

        Raises:
            BundleError: the manifest is missing or invalid, a file is missing or altered, or a path escapes.
        """
        root = Path(path)
        try:
            raw = (root / MANIFEST).read_bytes()
        except OSError as exc:
            raise BundleError(f"{root}: cannot read {MANIFEST}: {exc}") from None
        manifest = read_manifest(raw, f"{root}/{MANIFEST}")
        for name, expected in manifest.files.items():
            file = _inside(root, name)
            if not file.is_file():
                raise BundleError(f"{root}: file {name} is missing")
            if sha256_file(file) != expected:
                raise BundleError(f"{root}: file {name} does not match its sha256 in the manifest")
        shipped = manifest.shipped()
        if not shipped:
            raise BundleError(f"{root}: the manifest lists no shipped variant")
        for v in shipped:
            if v.file is None or v.signature is None:
                raise BundleError(f"{root}: shipped variant {v.id} names no model file or signature")
            _inside(root, v.file)
        fmt = manifest.target.format
        if fmt in ("tflite", "tflm"):
            backend: Backend = LiteRTBackend(root, threads)
        elif fmt == "onnx":
            backend = OnnxRuntimeBackend(root, threads)
        else:
            raise BundleError(f"{root}: unknown model format {fmt!r}; valid choices: onnx, tflite, tflm")
        return cls(root, manifest, backend)

    def get(self, variant: str) -> VariantInfo:
        """The shipped variant called ``variant``."""
        for v in self.variants:
            if v.id == variant:
                return v
        raise BundleError(f"unknown variant {variant!r}; valid choices: {', '.join(v.id for v in self.variants)}")

    def select(
        self, latency_ms: float | None = None, ram: int | None = None, min_accuracy: float | None = None
    ) -> VariantInfo:
        """The most accurate variant within the budget (ties: the faster one).

        Raises:
            BundleError: nothing meets the budget; the message names the closest variant.
        """
        ok = [
            v
            for v in self.variants
            if (latency_ms is None or v.latency_ms <= latency_ms)
            and (ram is None or v.ram_bytes <= ram)
            and (min_accuracy is None or (v.accuracy or 0.0) >= min_accuracy)
        ]
        if not ok:
            fastest = min(self.variants, key=lambda v: v.latency_ms)
            raise BundleError(
                f"no variant meets the budget; closest is {fastest.id} "
                f"({fastest.latency_ms:.2f} ms, {fastest.ram_bytes} B RAM, accuracy {fastest.accuracy:.3f})"
            )
        return max(ok, key=lambda v: (v.accuracy or 0.0, -v.latency_ms))

    def run(self, images: np.ndarray, variant: str) -> np.ndarray:
        """Logits for float images ``N x C x H x W`` (or one ``C x H x W``) in [0, 1]."""
        info = self.get(variant)
        x = np.asarray(images, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        expected = self.manifest.input.shape
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise BundleError(
                f"input shape {tuple(x.shape)} does not match the bundle's (N, {', '.join(map(str, expected))})"
            )
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        return np.concatenate([self._backend.run(info.file, info.signature, xi[None]) for xi in x])
