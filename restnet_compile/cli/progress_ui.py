"""Rich progress bars on stderr for the long stages of a build (CKA, tuning, export, parity)."""

from __future__ import annotations

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

from restnet_compile._util.progress import Reporter


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

    def __enter__(self) -> RichReporter:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def __call__(self, message: str) -> None:
        self.bars.console.print(message, highlight=False, markup=False)

    def stage(self, name: str, total: int) -> None:
        if name in self._tasks:
            self.bars.reset(self._tasks[name], total=total)
        else:
            self._tasks[name] = self.bars.add_task(name, total=total)

    def advance(self, name: str) -> None:
        if name in self._tasks:
            self.bars.advance(self._tasks[name])
