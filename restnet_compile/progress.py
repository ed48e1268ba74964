"""Build progress: log lines plus counted stages, so a front end can draw bars (the CLI uses rich).

Every API function that takes ``progress`` accepts either a plain ``Callable[[str], None]`` (log lines only) or a
:class:`Reporter`, which also hears when a counted stage starts and advances.
"""

from __future__ import annotations

from collections.abc import Callable


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


def as_reporter(progress: Callable[[str], None] | Reporter) -> Reporter:
    """Wrap a plain callback so callers can always use the stage API."""
    return progress if isinstance(progress, Reporter) else Reporter(progress)
