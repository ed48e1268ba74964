"""A failed compile reported as its first error, not the whole log."""

from __future__ import annotations

import re

from restnet_compile.errors import RestnetError

_ERROR = re.compile(r"(error:|Error \d+|undefined reference|No rule to make target|\*\*\*)")


class FirmwareBuildError(RestnetError):
    """The firmware or the TFLite Micro library did not compile or link (exit code 1)."""


def first_error(log: str) -> str:
    """The first line of ``log`` that reports an error (the last line when none does)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line):
            return line[:400]
    return lines[-1][:400] if lines else "no output"
