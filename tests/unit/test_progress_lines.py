"""Progress without a terminal (CI, nohup, a pipe): a line when a stage starts and advances, and a line at least
every ``every`` seconds while a stage runs, so a log never goes silent."""

from __future__ import annotations

import io
import time

from restnet_compile._util.progress import LineReporter
from restnet_compile.cli.progress_ui import RichReporter, progress_reporter


def test_stages_and_heartbeats_print_plain_lines() -> None:
    out = io.StringIO()
    with LineReporter(out, every=0.3, gap=0.0) as progress:
        progress("CKA: 6 x 4 blocks")
        progress.stage("tuning adapters", 2)
        progress.advance("tuning adapters")
        time.sleep(1.6)  # a long step: the heartbeat speaks for it
        progress.advance("tuning adapters")
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["CKA: 6 x 4 blocks", "tuning adapters: 0/2", "tuning adapters: 1/2 after 0s"]
    beats = [line for line in lines[3:-1] if line.startswith("tuning adapters: 1/2 after")]
    assert len(beats) >= 2, lines
    assert lines[-1].startswith("tuning adapters: 2/2 after 1s")


def test_between_stages_the_heartbeat_gives_the_time_since_the_start() -> None:
    out = io.StringIO()
    with LineReporter(out, every=0.3) as progress:
        progress.stage("export", 1)
        progress.advance("export")
        time.sleep(1.5)
    assert any(
        line.startswith("working: ") and line.endswith("since the start") for line in out.getvalue().splitlines()
    )


def test_fast_steps_are_not_a_line_each() -> None:
    out = io.StringIO()
    with LineReporter(out, every=60, gap=60) as progress:
        progress.stage("CKA", 100)
        for _ in range(100):
            progress.advance("CKA")
    assert out.getvalue().splitlines() == ["CKA: 0/100", "CKA: 100/100 after 0s"]


def test_without_a_terminal_the_cli_prints_lines(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(progress_reporter(), LineReporter)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(progress_reporter(), RichReporter)


def test_nothing_is_printed_before_the_build_speaks() -> None:
    """A bad input found while loading stays a one-line error however long the loading took."""
    out = io.StringIO()
    with LineReporter(out, every=0.2):
        time.sleep(1.0)
    assert out.getvalue() == ""
