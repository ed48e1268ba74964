"""Silence the C++ logging of TensorFlow / LiteRT / onnx2tf / TFLite Micro, which bypasses Python's streams."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_output(keep_tail_on_error: int = 30, fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Redirect file descriptors ``fds`` (stdout and stderr) to a temporary file for the duration of the block.

    If the block raises, the last ``keep_tail_on_error`` captured lines are written to the real stderr first, so a
    backend failure is never silent. The descriptors are restored, and their copies closed, however the block ends.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    tail: list[str] = []
    try:
        with tempfile.TemporaryFile(mode="w+b") as sink:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            try:
                yield
            except BaseException:
                if keep_tail_on_error:
                    sink.seek(0)
                    tail = sink.read().decode(errors="replace").splitlines()[-keep_tail_on_error:]
                raise
            finally:
                with contextlib.suppress(OSError):
                    sys.stdout.flush()
                    sys.stderr.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
    finally:
        for copy in saved.values():
            os.close(copy)
        if tail:
            sys.stderr.write("\n".join(["backend output before the error:", *tail]) + "\n")
