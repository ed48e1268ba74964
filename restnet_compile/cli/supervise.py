"""A command that connects to Ray runs in a child process, so that a lost cluster is still one line.

When the Ray node a driver is attached to dies (the head killed, its raylet gone), Ray's runtime ends the driver's
process at once (a C++ quick exit): no Python exception, no ``finally``, no ``error:`` line. So this process forks
before the build starts; the child runs the command as usual and says so when it exits through Python (success or
any reported error, after its own ``error:`` line). If it ends without saying so, this process prints the one line
instead. Either way this process exits with the child's code (1 when the child was ended by Ray or a signal).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

import click

from restnet_compile.errors import EXIT_INTERNAL

#: Set by the console script (:func:`restnet_compile.cli.main`) only: a CLI run inside another program (tests call
#: ``run_guarded``) is never forked.
ENABLED = False


def _said(fd: int) -> None:
    try:
        os.write(fd, b"1")
    except OSError:
        pass


def outlive_ray(address: str | None) -> None:
    """Fork; return in the child, which goes on with the command. The parent waits for it and exits (never returns).

    ``address``: the cluster's address, for the line (None: a local instance). Does nothing unless
    :data:`ENABLED`.
    """
    if not ENABLED:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        atexit.register(_said, write)
        return
    os.close(write)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child, which reports it
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGINT, previous)
    said = os.read(read, 1)
    code = os.waitstatus_to_exitcode(status)
    if not said:
        how = f"killed by signal {-code}" if code < 0 else f"ended with code {code}"
        where = f"at {address}" if address else "this build started"
        click.echo(
            f"error: executor ray: lost the Ray cluster {where}: the build's process was {how} by the Ray runtime "
            "(its head or this machine's Ray node is gone); start it again and rerun (finished stages are in the "
            "build cache)",
            err=True,
        )
        code = EXIT_INTERNAL
    os._exit(code if code >= 0 else EXIT_INTERNAL)
