"""Run many short ``restnet-compile`` command lines, each in a process of its own, without importing torch each time.

A process started with ``python tests/cli_forkserver.py`` imports the CLI and what a build imports before it reads
its input (torch, the pipeline), then reads one JSON request per line from stdin: ``{"cwd": ..., "args": [...]}``.
For each it forks a child that runs the console script's ``main()`` exactly as ``python -m restnet_compile`` does,
in ``cwd``, with its stdout and stderr in files of the server's own folder; the child exits with the command's code
(after its ``atexit`` handlers, as an interpreter exit runs them), or is killed after :data:`TIMEOUT` seconds. The
server answers one JSON line per request: ``{"code": ..., "stdout": ..., "stderr": ...}``.

The server is single-threaded and has run no torch operation when it forks, so every child starts as a fresh
interpreter would, only without paying for the imports again (most of the 2.2 s a refused build takes).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

#: Seconds a command may run before its process is killed (it then answers -9).
TIMEOUT = 180.0
PRELOAD = (
    "torch",
    "restnet_compile.cli",
    "restnet_compile.api",
    "restnet_compile.pipeline.driver",
    "restnet_compile.models",
    "restnet_compile.data",
)


def _child(cwd: str, args: list[str], out: Path, err: Path) -> None:
    from restnet_compile.cli import main

    code = 1
    try:
        os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = ["restnet-compile", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    """The child's exit code (negative: the signal that ended it); killed after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.01)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    folder = Path(tempfile.mkdtemp(prefix="cli-forkserver-"))
    try:
        for n, line in enumerate(sys.stdin):
            request = json.loads(line)
            out, err = folder / f"{n}.out", folder / f"{n}.err"
            pid = os.fork()
            if pid == 0:
                _child(request["cwd"], request["args"], out, err)
            answer = {
                "code": _wait(pid, TIMEOUT),
                "stdout": out.read_text(errors="replace"),
                "stderr": err.read_text(errors="replace"),
            }
            out.unlink()
            err.unlink()
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


class ForkServer:
    """A running server (see the module): :meth:`run` gives a command's ``CompletedProcess``; one at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        self._lock = Lock()

    def run(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps({"cwd": str(cwd), "args": args}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI fork server ended (code {self._proc.poll()})")
        answer = json.loads(line)
        return subprocess.CompletedProcess(args, answer["code"], answer["stdout"], answer["stderr"])

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=60)


@contextmanager
def fork_servers(count: int, env: dict[str, str]) -> Iterator[list[ForkServer]]:
    """``count`` servers started side by side, closed after the block."""
    servers = [ForkServer(env) for _ in range(count)]
    try:
        yield servers
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    serve()
