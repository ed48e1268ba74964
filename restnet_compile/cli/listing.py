"""``restnet-compile profiles`` / ``targets``: list the built-ins, ``show NAME`` prints one.

They read YAML only: neither torch nor TensorFlow is imported, so they answer well under a second.
"""

from __future__ import annotations

import click

from restnet_compile.cli.base import SCHEMAS, requires


@click.group("profiles", invoke_without_command=True)
@click.pass_context
@requires(*SCHEMAS)
def profiles_cmd(ctx: click.Context) -> None:
    """List the built-in device profiles (or `profiles show NAME`)."""
    from restnet_compile._util.units import format_size
    from restnet_compile.config.device import list_profiles

    if ctx.invoked_subcommand is None:
        for p in list_profiles():
            click.echo(
                f"{p.name:8} {p.device_class:7} latency p{p.latency.percentile} <= {p.latency.budget:g} ms, "
                f"RAM {format_size(p.ram)}, flash {format_size(p.flash)}, {'/'.join(p.dtypes)}, "
                f"target {p.target}  - {p.soc}"
            )


@profiles_cmd.command("show")
@click.argument("name")
def show_profile(name: str) -> None:
    """Print one profile (built-in name or YAML path)."""
    from restnet_compile.config.device import show_profile

    click.echo(show_profile(name), nl=False)


@click.group("targets", invoke_without_command=True)
@click.pass_context
@requires(*SCHEMAS)
def targets_cmd(ctx: click.Context) -> None:
    """List the built-in export targets (or `targets show NAME`)."""
    from restnet_compile.config.device import list_targets

    if ctx.invoked_subcommand is None:
        for t in list_targets():
            click.echo(f"{t.name:12} {t.exporter:7} {t.dtype:5} - {t.description}")


@targets_cmd.command("show")
@click.argument("name")
def show_target(name: str) -> None:
    """Print one target (built-in name or YAML path)."""
    from restnet_compile.config.device import show_target

    click.echo(show_target(name), nl=False)
