"""Open a bundle, check its checksums, choose a variant by budget and run it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile.runtime.backends import Backend, LiteRTBackend, OnnxRuntimeBackend

MANIFEST = "manifest.json"
SEAL_FIELD = "manifest_sha256"  # the manifest's own sha256, computed with this field's value set to 64 zeros
_ZEROS = "0" * 64
_SEAL = re.compile(rb'"' + SEAL_FIELD.encode() + rb'": "([0-9a-f]{64})"')


class BundleError(ValueError):
    """The bundle is missing, altered, or asked for something it cannot do."""


@dataclass(frozen=True)
class VariantInfo:
    """What the runtime knows about one shipped variant (from the manifest)."""

    id: str
    signature: str
    file: str
    latency_ms: float
    ram_bytes: int
    accuracy: float | None


def seal_manifest(manifest: dict) -> bytes:
    """The manifest as byte-stable JSON (sorted keys, indent 2, trailing newline) carrying its own sha256.

    The seal is the sha256 of the file's exact bytes with the seal's value replaced by 64 zeros, so any change to
    any byte of the file (values, keys, whitespace or the seal itself) is detected by :func:`read_manifest`.
    """
    text = json.dumps({**manifest, SEAL_FIELD: _ZEROS}, indent=2, sort_keys=True) + "\n"
    blank = f'"{SEAL_FIELD}": "{_ZEROS}"'.encode()
    raw = text.encode()
    digest = hashlib.sha256(raw).hexdigest()
    return raw.replace(blank, f'"{SEAL_FIELD}": "{digest}"'.encode(), 1)


def read_manifest(raw: bytes, where: str = MANIFEST) -> dict:
    """Parse manifest bytes after checking their seal (see :func:`seal_manifest`).

    Raises:
        BundleError: the seal is missing or does not match the bytes, or the JSON is invalid.
    """
    seals = list(_SEAL.finditer(raw))
    if len(seals) != 1:
        raise BundleError(f"{where}: no valid {SEAL_FIELD} seal: the manifest was altered or is not a bundle manifest")
    seal = seals[0]
    blanked = raw[: seal.start(1)] + _ZEROS.encode() + raw[seal.end(1) :]
    if hashlib.sha256(blanked).hexdigest() != seal.group(1).decode():
        raise BundleError(f"{where}: the manifest does not match its own {SEAL_FIELD}: it was altered")
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # only reachable with a recomputed seal
        raise BundleError(f"{where}: invalid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a JSON object")
    return manifest


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if Path(name).is_absolute() or root.resolve() not in path.parents:
        raise BundleError(f"manifest names file {name!r} outside the bundle")
    return path


class Bundle:
    """A bundle opened on the device. Use :meth:`open`."""

    def __init__(self, root: Path, manifest: dict, backend: Backend) -> None:
        self.root = root
        self.manifest = manifest
        self._backend = backend
        self.layout: str = manifest["input"]["layout"]
        self.variants = [
            VariantInfo(v["id"], v["signature"], v["file"], v["latency_ms"], v["ram_bytes"], v["accuracy_deployed"])
            for v in manifest["variants"]
            if v["selected"]
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
        for name, expected in manifest.get("files", {}).items():
            file = _inside(root, name)
            if not file.is_file():
                raise BundleError(f"{root}: file {name} is missing")
            if sha256_file(file) != expected:
                raise BundleError(f"{root}: file {name} does not match its sha256 in the manifest")
        shipped = [v for v in manifest.get("variants", []) if v.get("selected")]
        if not shipped:
            raise BundleError(f"{root}: the manifest lists no shipped variant")
        for v in shipped:
            _inside(root, v["file"])
        fmt = manifest["target"]["format"]
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
        expected = tuple(self.manifest["input"]["shape"])
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise BundleError(
                f"input shape {tuple(x.shape)} does not match the bundle's (N, {', '.join(map(str, expected))})"
            )
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        return np.concatenate([self._backend.run(info.file, info.signature, xi[None]) for xi in x])
