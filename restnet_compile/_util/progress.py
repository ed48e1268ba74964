"""Build progress: log lines plus counted stages, so a front end can draw bars (the CLI uses rich).

Every API function that takes ``progress`` accepts either a plain ``Callable[[str], None]`` (log lines only) or a
:class:`Reporter`, which also hears when a counted stage starts and advances, and which stages came from the cache.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class Reporter:
    """Forwards log lines to ``log``; ``stage`` / ``advance`` do nothing here and are for subclasses to draw."""

    def __init__(self, log: Callable[[str], None] = lambda _msg: None) -> None:
        self._log = log

    def __call__(self, message: str) -> None:
        self._log(message)

    def stage(self, name: str, total: int) -> None:
        """A counted stage of ``total`` steps begins (the base class only logs lines)."""

    def advance(self, name: str) -> None:
        """One step of stage ``name`` is done (the base class only logs lines)."""

    def cache(self, stage: str, reused: bool) -> None:
        """Stage ``stage`` was served from the build cache (``reused``), or computed and stored in it."""


class JsonLinesReporter(Reporter):
    """Every event as one JSON object per line, for CI logs and tools: ``{"event": "log", "message": ...}``,
    ``{"event": "stage", "stage": ..., "total": ...}``, ``{"event": "advance", "stage": ...}`` and
    ``{"event": "cache", "stage": ..., "reused": ...}``; each line is flushed when it happens.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr

    def _emit(self, event: dict) -> None:
        self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        self.stream.flush()

    def __call__(self, message: str) -> None:
        self._emit({"event": "log", "message": message})

    def stage(self, name: str, total: int) -> None:
        self._emit({"event": "stage", "stage": name, "total": total})

    def advance(self, name: str) -> None:
        self._emit({"event": "advance", "stage": name})

    def cache(self, stage: str, reused: bool) -> None:
        self._emit({"event": "cache", "stage": stage, "reused": reused})


class LineReporter(Reporter):
    """Plain lines for logs without a terminal (CI, ``nohup``, a pipe): every log line, a line when a counted stage
    starts, advances (at most one per ``gap`` seconds, and always its last step) and, once the build has printed its
    first line, at least one line every ``every`` seconds, with the current stage's count and time (``tuning
    adapters: 2/5 after 3m10s``), so a log never goes silent for long. Use as a context manager.
    """

    def __init__(self, stream: TextIO | None = None, every: float = 30.0, gap: float = 2.0) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.gap = gap
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # stage -> [done, total]
        self._started: dict[str, float] = {}
        self._current: str | None = None
        self._last_line = time.monotonic()
        self._spoken = False
        self._begun = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="progress-lines", daemon=True)

    def __enter__(self) -> LineReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line = time.monotonic()
            self._spoken = True

    def __call__(self, message: str) -> None:
        self._write(message)

    def stage(self, name: str, total: int) -> None:
        self._counts[name] = [0, total]
        self._started[name] = time.monotonic()
        self._current = name
        self._write(f"{name}: 0/{total}")

    def advance(self, name: str) -> None:
        if name not in self._counts:
            return
        count = self._counts[name]
        count[0] += 1
        if count[0] >= count[1] or time.monotonic() - self._last_line >= self.gap:
            self._write(self._status(name))

    def _status(self, name: str) -> str:
        done, total = self._counts[name]
        return f"{name}: {done}/{total} after {_clock(time.monotonic() - self._started[name])}"

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 3)):
            if not self._spoken or time.monotonic() - self._last_line < self.every:
                continue  # silent until the build has begun speaking: a bad input stays one line
            name = self._current
            if name is not None and self._counts[name][0] < self._counts[name][1]:
                self._write(self._status(name))
            else:
                self._write(f"working: {_clock(time.monotonic() - self._begun)} since the start")


def _clock(seconds: float) -> str:
    """``42s``, ``3m05s``."""
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


def as_reporter(progress: Callable[[str], None] | Reporter) -> Reporter:
    """Wrap a plain callback so callers can always use the stage API."""
    return progress if isinstance(progress, Reporter) else Reporter(progress)
