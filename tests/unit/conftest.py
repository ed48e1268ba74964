"""Unit-tier fixtures: one torch thread per test, and the CLI run in process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from restnet_compile.cli import cli
from restnet_compile.cli.base import run_guarded

CliCall = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Unit tests run tiny models, where a second intra-op thread only adds synchronisation (5x the CPU time)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def cli_in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliCall:
    """Run ``restnet-compile ARGS`` the way ``main()`` does (same error lines and exit codes), in this process.

    A subprocess would pay for importing torch again; the integration tier runs the real command line.
    """

    def invoke(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["restnet-compile", *args])
        capsys.readouterr()
        code = run_guarded(cli)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return invoke
