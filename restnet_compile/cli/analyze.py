"""``restnet-compile analyze``: CKA matrix of a model pair, the stitch candidates, and ``cka.png``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from restnet_compile.cli.base import TOOLCHAIN, requires
from restnet_compile.cli.options import check_names_early, config_overrides, model_options


def _check_out(out: Path) -> None:
    import os

    from restnet_compile.errors import BadInputError

    if out.exists() and not out.is_dir():
        raise BadInputError(f"output {out} is a file, not a folder")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"output {out} is not writable")


@click.command("analyze")
@model_options
@click.option("--order", type=click.Choice(["large-small", "small-large"]), help="Stitch order (default large-small).")
@click.option("--samples", type=click.IntRange(min=4), help="Calibration images to use (default: all of the split).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder for cka.png."
)
@requires(*TOOLCHAIN)
def analyze_cmd(config_path: Path | None, order: str | None, samples: int | None, out: Path, **models: Any) -> None:
    """Print the CKA matrix of two models and the stitch candidates; write OUT/cka.png."""
    from restnet_compile.config.build import load_build_config

    _check_out(out)
    config = load_build_config(config_path, **config_overrides(models))
    check_names_early(config)
    from restnet_compile import api

    if order is not None:
        config = config.model_copy(update={"plan": config.plan.model_copy(update={"order": order})})
    result = api.analyze(config, out, samples)
    click.echo(f"CKA ({result.samples} calibration images): rows = {result.large}, columns = {result.small}")
    for label in result.small_blocks:
        click.echo(f"  {label}")
    click.echo(" " * 40 + "".join(f"{'S' + str(j):>7}" for j in range(len(result.small_blocks))))
    for label, row in zip(result.large_blocks, result.cka, strict=True):
        click.echo(f"{label[:39]:40}" + "".join(f"{x:7.3f}" for x in row))
    rule = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(result.rule).items())
    click.echo(f"\n{len(result.candidates)} candidates ({rule}):")
    for c in result.candidates:
        click.echo(f"  {c.id:8} adapter {c.adapter:14} CKA {c.cka:.3f}  {c.flops / 1e6:9.2f} MFLOPs")
    if result.rejected:
        click.echo("pairs of blocks rejected:")
        for line in result.rejected:
            click.echo(f"  {line}")
    click.echo(f"\nheatmap: {result.heatmap}")
