"""Shared CLI plumbing: one-line errors with documented exit codes."""

from __future__ import annotations

import traceback

import click

from restnet_compile.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, RestnetError


def run_guarded(cli: click.Group) -> int:
    """Run the click group; map errors to one line on stderr and the documented exit code."""
    try:
        cli.main(standalone_mode=False)
    except RestnetError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERNAL
    except Exception:  # a bug: show it whole
        traceback.print_exc()
        return EXIT_INTERNAL
    return 0
