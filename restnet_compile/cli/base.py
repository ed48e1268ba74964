"""Shared CLI plumbing: one-line errors with documented exit codes, and the extras a verb needs."""

from __future__ import annotations

import functools
import importlib.util
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from restnet_compile.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, BadInputError, RestnetError

P = ParamSpec("P")
R = TypeVar("R")

#: What the compiler verbs import (the ``compile`` extra); the device runtime needs none of it.
TOOLCHAIN = ("torch", "tensorflow", "onnx", "onnx2tf", "fvcore", "pydantic", "yaml", "matplotlib")
#: What reading profiles and targets needs (also part of the ``compile`` extra).
SCHEMAS = ("pydantic", "yaml")
#: The extra that installs a module, where it is not ``compile``.
_EXTRA_OF = {"onnxruntime": "onnx", "ray": "ray"}


def missing_module_message(module: str) -> str:
    """One line naming the missing module and the extra that installs it."""
    top = module.split(".")[0]
    extra = _EXTRA_OF.get(top, "compile")
    return f"{top} is not installed; install the '{extra}' extra: pip install 'restnet-compile[{extra}]'"


def requires(*modules: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse to run a verb, before it does anything, when one of ``modules`` is not installed (exit code 2)."""

    def wrap(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            missing = next((m for m in modules if importlib.util.find_spec(m) is None), None)
            if missing is not None:
                raise BadInputError(missing_module_message(missing))
            return command(*args, **kwargs)

        return checked

    return wrap


def run_guarded(cli: click.Group) -> int:
    """Run the click group; map errors to one line on stderr and the documented exit code."""
    try:
        code = cli.main(standalone_mode=False)  # a command that raised click's Exit returns its code here
    except RestnetError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted: nothing half-written was published; a build resumes from its cache", err=True)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "restnet_compile":
            traceback.print_exc()  # our own module missing is a bug
            return EXIT_INTERNAL
        click.echo(f"error: {missing_module_message(exc.name)}", err=True)  # an extra that is not installed
        return EXIT_BAD_INPUT
    except Exception:  # a bug: show it whole
        traceback.print_exc()
        return EXIT_INTERNAL
    return code if isinstance(code, int) else 0
