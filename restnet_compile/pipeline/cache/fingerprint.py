"""Fingerprints for cache keys: the package and tool versions, a model's identity, data arrays."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile import __version__
from restnet_compile._util.torch_digest import module_digest
from restnet_compile.data import Splits
from restnet_compile.data.lazy import images_digest

__all__ = ["array_digest", "environment", "module_digest", "source_digest", "splits_digest", "tool_versions"]

_PACKAGE = Path(__file__).resolve().parents[2]  # the whole package, not only pipeline/ (this is pipeline/cache/)


_TOOLS = ("torch", "numpy", "fvcore", "onnx", "onnxscript", "onnx2tf", "tensorflow", "onnxruntime", "ai-edge-litert")


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape the bundle's bytes (the manifest records them; cache keys hold them)."""
    out = {"restnet-compile": __version__}
    for name in _TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_digest() -> str:
    """sha256 of the package's Python source: a development change to the code invalidates every entry."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def environment() -> dict[str, Any]:
    """Package version and source, tool versions and the platform: what shapes the bytes besides the inputs."""
    return {
        "package": __version__,
        "source": source_digest(),
        "tools": tool_versions(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def array_digest(*arrays: np.ndarray[Any, Any]) -> str:
    """sha256 of ``arrays`` (their dtypes and shapes included)."""
    h = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(f"\0{a.dtype.str}\0{a.shape}\0".encode() + a.tobytes())
    return h.hexdigest()


def splits_digest(splits: Splits) -> str:
    """sha256 of every split's images and labels (lazy images by their source's content hash and row indices)."""
    h = hashlib.sha256()
    for ds in (getattr(splits, n) for n in ("train", "calib", "val", "test")):
        images_digest(h, ds.images)
        images_digest(h, ds.labels)
    return h.hexdigest()
