"""``restnet-compile profiles`` / ``targets``: list the built-ins, ``show NAME`` prints one.

They read the built-in YAML (package data) with the standard library only: neither torch, TensorFlow, pydantic nor
PyYAML is imported, so they answer well under a second and work in the runtime-only install. ``show`` also validates
the file where the ``compile`` extra is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import click

from restnet_compile.cli.base import SCHEMAS
from restnet_compile.config.names import Kind, builtin_dir, builtin_names, read_plain_fields, resolve


def profile_line(fields: dict[str, Any]) -> str:
    """One profile in the listing: class, latency budget, memory, dtypes, default target and SoC."""
    from restnet_compile._util.units import format_size, parse_duration_ms, parse_size

    latency = fields["latency"]
    return (
        f"{fields['name']:8} {fields['class']:7} latency p{latency.get('percentile', '90')} <= "
        f"{parse_duration_ms(latency['budget']):g} ms, RAM {format_size(parse_size(fields['ram']))}, flash "
        f"{format_size(parse_size(fields['flash']))}, {'/'.join(fields['dtypes'])}, target {fields['target']}  - "
        f"{fields['soc']}"
    )


def target_line(fields: dict[str, Any]) -> str:
    """One target in the listing: exporter, dtype and description."""
    return f"{fields['name']:12} {fields['exporter']:7} {fields['dtype']:5} - {fields['description']}"


def _fields(kind: Kind) -> list[dict[str, Any]]:
    return [read_plain_fields(builtin_dir(kind) / f"{n}.yaml") for n in builtin_names(kind)]


def _show(kind: Kind, name: str) -> None:
    if all(importlib.util.find_spec(m) is not None for m in SCHEMAS):
        from restnet_compile.config import device

        text = device.show_profile(name) if kind == "profiles" else device.show_target(name)
    else:  # the runtime-only install: the file as it is
        text = resolve(kind, name).read_text(encoding="utf-8")
    click.echo(text, nl=False)


@click.group("profiles", invoke_without_command=True)
@click.pass_context
def profiles_cmd(ctx: click.Context) -> None:
    """List the built-in device profiles (or `profiles show NAME`)."""
    if ctx.invoked_subcommand is None:
        for fields in _fields("profiles"):
            click.echo(profile_line(fields))


@profiles_cmd.command("show")
@click.argument("name")
def show_profile(name: str) -> None:
    """Print one profile (built-in name or YAML path)."""
    _show("profiles", name)


@click.group("targets", invoke_without_command=True)
@click.pass_context
def targets_cmd(ctx: click.Context) -> None:
    """List the built-in export targets (or `targets show NAME`)."""
    if ctx.invoked_subcommand is None:
        for fields in _fields("targets"):
            click.echo(target_line(fields))


@targets_cmd.command("show")
@click.argument("name")
def show_target(name: str) -> None:
    """Print one target (built-in name or YAML path)."""
    _show("targets", name)
