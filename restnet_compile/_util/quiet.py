"""Silence the C++ logging of TensorFlow / LiteRT / onnx2tf, which bypasses Python's streams."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_output(keep_tail_on_error: int = 30) -> Iterator[None]:
    """Redirect file descriptors 1 and 2 to a temporary file for the duration of the block.

    If the block raises, the last ``keep_tail_on_error`` captured lines are written to the real stderr first, so a
    backend failure is never silent.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            sink.seek(0)
            tail = sink.read().decode(errors="replace").splitlines()[-keep_tail_on_error:]
            if tail:
                sys.stderr.write("\n".join(["backend output before the error:", *tail]) + "\n")
            raise
        finally:
            _restore(saved)


def _restore(saved: tuple[int, int]) -> None:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
