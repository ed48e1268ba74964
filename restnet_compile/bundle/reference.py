"""``reference.npz``: a few test inputs with the PyTorch and the deployed outputs, for ``verify`` on a device.

Written byte-for-byte reproducibly (fixed zip timestamps, sorted names), so same inputs give the same file.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile.bundle.manifest import REFERENCE_FILE

REFERENCE_SAMPLES = 32
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
    """Like ``np.savez_compressed`` but deterministic: sorted members, fixed timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)  # the .npy format's bytes
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_reference(
    out_dir: Path,
    inputs: np.ndarray[Any, Any],
    torch_out: dict[str, np.ndarray[Any, Any]],
    deployed_out: dict[str, np.ndarray[Any, Any]],
) -> Path:
    """Write the reference file for the shipped variants."""
    arrays = {"inputs": inputs.astype(np.float32)}
    for vid in torch_out:
        arrays[f"torch_{vid}"] = torch_out[vid].astype(np.float32)
        arrays[f"deployed_{vid}"] = deployed_out[vid].astype(np.float32)
    path = out_dir / REFERENCE_FILE
    write_npz(path, arrays)
    return path
