"""Build progress: log lines plus counted stages, so a front end can draw bars (the CLI uses rich).

Every API function that takes ``progress`` accepts either a plain ``Callable[[str], None]`` (log lines only) or a
:class:`Reporter`, which also hears when a counted stage starts and advances, and which stages came from the cache.
"""

from __future__ import annotations

import json
import sys
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


def as_reporter(progress: Callable[[str], None] | Reporter) -> Reporter:
    """Wrap a plain callback so callers can always use the stage API."""
    return progress if isinstance(progress, Reporter) else Reporter(progress)
