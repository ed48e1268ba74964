"""``restnet-compile blocks``: the blocks a build cuts each model into, to read before choosing ``split:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from restnet_compile.cli.base import TOOLCHAIN, requires
from restnet_compile.cli.options import config_overrides, model_options


@click.command("blocks")
@model_options
@click.option(
    "--model",
    "which",
    type=click.Choice(["large", "small", "both"]),
    default="both",
    show_default=True,
    help="Which model's blocks to print.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON.")
@requires(*TOOLCHAIN)
def blocks_cmd(config_path: Path | None, which: str, as_json: bool, **models: Any) -> None:
    """Print each model's blocks: where each ends in the model, its output and its multiply-adds per image.

    Models are split as a build splits them: the hand-written splitter of their family, else the traced split rule,
    or the config's large_split / small_split. No data is read.
    """
    import dataclasses
    import json

    from restnet_compile import api
    from restnet_compile.config.build import load_build_config
    from restnet_compile.models.block_table import format_block_table

    config = load_build_config(config_path, **config_overrides(models))
    roles = ("large", "small") if which == "both" else (which,)
    tables = api.blocks(config, roles)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(t) for t in tables], indent=2))
        return
    for k, t in enumerate(tables):
        if k:
            click.echo("")
        shape = "x".join(map(str, t.input_shape))
        click.echo(f"{t.role} model {t.model} (input {shape}): {len(t.rows) - 1} blocks and a head")
        click.echo(format_block_table(t.rows))
