"""Progress on stderr for the long stages of a build (CKA, tuning, export, parity): rich bars on a terminal, plain
lines at least every 30 seconds elsewhere (CI, ``nohup``, a pipe), where bars would print nothing until the end."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from restnet_compile._util.progress import LineReporter, Reporter


def progress_reporter() -> RichReporter | LineReporter:
    """Bars when stderr is a terminal, else plain lines (a context manager either way)."""
    return RichReporter() if sys.stderr.isatty() else LineReporter()


class RichReporter(Reporter):
    """Log lines above live bars, one bar per counted stage. Use as a context manager."""

    def __init__(self) -> None:
        super().__init__()
        self.console = Console(stderr=True)
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started = False

    def __enter__(self) -> RichReporter:
        return self  # the bars start with the first counted stage: an early error prints no empty live display

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.bars.stop()

    def __call__(self, message: str) -> None:
        self.bars.console.print(message, highlight=False, markup=False)

    def stage(self, name: str, total: int) -> None:
        if not self._started:
            self.bars.start()
            self._started = True
        if name in self._tasks:
            self.bars.reset(self._tasks[name], total=total)
        else:
            self._tasks[name] = self.bars.add_task(name, total=total)

    def advance(self, name: str) -> None:
        if name in self._tasks:
            self.bars.advance(self._tasks[name])
