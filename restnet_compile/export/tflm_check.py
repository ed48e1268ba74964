"""Run exported variants in the real TensorFlow Lite Micro interpreter and measure the arena each one needs.

TFLM (PyPI ``tflite-micro``) runs the first subgraph of a model and crashes on the multi-signature bundle, so every
variant is checked through its own single-subgraph file cut from the bundle (:func:`extract_signature`: same ops,
tensors and constant bytes). The smallest working arena is found by bisection: the interpreter allocates every
tensor when it is created and raises when the arena is too small, and one inference must then run.
"""

from __future__ import annotations

import numpy as np

from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.errors import RestnetError


class TFLMError(RestnetError):
    """The TFLite Micro interpreter cannot run a variant at all."""


def runs_in(model: bytes, arena_size: int, n_inputs: int = 1) -> bool:
    """Whether TFLM allocates ``model`` in ``arena_size`` bytes and runs one inference on zeros."""
    from tflite_micro.python.tflite_micro import runtime

    with quiet_native_output(keep_tail_on_error=0, fds=(2,)):  # TFLM prints allocation failures to fd 2
        try:
            interp = runtime.Interpreter.from_bytes(model, arena_size=int(arena_size))
            for i in range(n_inputs):
                detail = interp.get_input_details(i)
                interp.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), i)
            interp.invoke()
        except RuntimeError:
            return False
    return True


def smallest_arena(model: bytes, upper: int, n_inputs: int = 1, granularity: int = 16) -> int:
    """Smallest arena (to ``granularity`` bytes) TFLM runs ``model`` in, searching up to ``upper`` bytes.

    Raises:
        TFLMError: the model does not run even in ``upper`` bytes.
    """
    if not runs_in(model, upper, n_inputs):
        raise TFLMError(f"TFLite Micro cannot run the model in {upper:,} bytes of arena")
    lo, hi = 0, -(-upper // granularity)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if runs_in(model, mid * granularity, n_inputs):
            hi = mid
        else:
            lo = mid
    return hi * granularity
