"""Error types and the documented process exit codes.

Exit codes (also listed in the README and in ``restnet-compile --help``):

* 0 -- success
* 1 -- internal error (a bug: please report it with the traceback), or the Ray cluster failed during the build
* 2 -- bad input (unknown name, invalid file, bad option)
* 3 -- infeasible: no variant fits the device profile
* 4 -- parity failure: an exported variant disagrees with PyTorch
* 130 -- interrupted (Ctrl-C, SIGINT): nothing half-written is left where a result goes; the cache keeps the stages
  that finished, so the next build resumes
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3
EXIT_PARITY = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


class RestnetError(Exception):
    """Base class for errors that the CLI reports as one line with an exit code."""

    exit_code: int = EXIT_INTERNAL


class BadInputError(RestnetError, ValueError):
    """The user's input (a name, a file, an option) is invalid."""

    exit_code = EXIT_BAD_INPUT


class ClusterError(RestnetError):
    """The Ray cluster failed during the build: its head, or a worker beyond retries, was lost."""

    exit_code = EXIT_INTERNAL


class InfeasibleError(RestnetError):
    """No variant satisfies the device profile's limits."""

    exit_code = EXIT_INFEASIBLE


class ParityError(RestnetError):
    """An exported model disagrees with its PyTorch reference beyond tolerance."""

    exit_code = EXIT_PARITY
