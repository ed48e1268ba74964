"""The reference a firmware is held to: every shipped variant run as its chain in the TensorFlow Lite Micro Python
interpreter (PyPI ``tflite-micro``, reference kernels on the host), requantized between segments as the device
runtime does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.bundle.segment_info import Boundary
from restnet_compile.runtime.chain import requantize

_ARENA = 8 << 20  # ample: this interpreter checks numerics, not memory


def tflm_outputs(bundle: Path, manifest: Manifest, inputs: dict[Boundary, np.ndarray]) -> dict[str, np.ndarray]:
    """int8 outputs [N, ...] of every shipped variant on the quantized reference inputs (keyed by first-segment
    input boundary, as :func:`restnet_compile.firmware.project.reference_inputs` gives them)."""
    from tflite_micro.python.tflite_micro import runtime

    interpreters: dict[str, object] = {}
    results: dict[str, np.ndarray] = {}
    with quiet_native_output(keep_tail_on_error=0, fds=(2,)):
        for v in manifest.shipped():
            chain = manifest.chain(v.id)
            for seg in chain:
                if seg.id not in interpreters:
                    model = (bundle / seg.file).read_bytes()
                    interpreters[seg.id] = runtime.Interpreter.from_bytes(model, arena_size=_ARENA)
            rows = []
            for x in inputs[chain[0].input]:
                q, previous = x[None], None
                for seg in chain:
                    if previous is not None:
                        q = requantize(q, previous, seg.input)
                    interp = interpreters[seg.id]
                    interp.set_input(q.reshape((1, *seg.input.shape)), 0)  # type: ignore[attr-defined]
                    interp.invoke()  # type: ignore[attr-defined]
                    q, previous = interp.get_output(0), seg.output  # type: ignore[attr-defined]
                rows.append(np.asarray(q, dtype=np.int8).reshape(-1))
            results[v.id] = np.stack(rows)
    return results
