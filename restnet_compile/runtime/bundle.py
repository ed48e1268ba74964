"""Open a bundle, check its checksums, choose a variant by budget and run it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile.bundle.manifest import MANIFEST, BundleError, Manifest, read_manifest
from restnet_compile.runtime.backends import Backend, LiteRTBackend, OnnxRuntimeBackend
from restnet_compile.runtime.chain import RawBackend, check_chains, check_segment_file, run_chain


@dataclass(frozen=True)
class VariantInfo:
    """What the runtime knows about one shipped variant (from the manifest).

    ``chain`` names the segments a variant's blocks are stored in. ``file`` and ``signature`` name what runs it in
    one call; they are None for a variant that runs as its chain, one call per segment.
    """

    id: str
    signature: str | None
    file: str | None
    latency_ms: float
    ram_bytes: int
    accuracy: float | None
    chain: tuple[str, ...] = ()

    @property
    def runs_as_chain(self) -> bool:
        """Whether it runs segment by segment (see ``VariantEntry.runs_as_chain``)."""
        return bool(self.chain) and self.signature is None


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
        self._checked: set[str] = set()  # segments whose files were checked against the manifest
        self.variants = [
            VariantInfo(v.id, v.signature, v.file, v.latency_ms, v.ram_bytes, v.accuracy_deployed, v.chain or ())
            for v in manifest.shipped()
            if (v.signature is not None and v.file is not None) or v.chain
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
        check_chains(manifest, str(root))
        for v in shipped:
            for seg in manifest.chain(v.id):
                _inside(root, seg.file)
            if v.runs_as_chain:
                continue
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

    def run(self, images: np.ndarray[Any, Any], variant: str) -> np.ndarray[Any, Any]:
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
        if info.runs_as_chain:
            return self._run_chain(info, x)
        file, signature = info.file, info.signature
        assert file is not None and signature is not None, "a shipped variant is a chain or has a file and a graph"
        return np.concatenate([self._backend.run(file, signature, xi[None]) for xi in x])

    def _run_chain(self, info: VariantInfo, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        backend = self._backend
        if not (hasattr(backend, "run_raw") and hasattr(backend, "io_details")):
            fmt = self.manifest.target.format
            raise BundleError(f"variant {info.id} runs as segments, which the {fmt} runtime cannot")
        raw: RawBackend = backend  # type: ignore[assignment]
        chain = self.manifest.chain(info.id)
        for seg in chain:
            if seg.id not in self._checked:
                check_segment_file(raw, seg)
                self._checked.add(seg.id)
        return np.concatenate([run_chain(raw, chain, xi[None]) for xi in x])
