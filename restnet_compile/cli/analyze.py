"""``restnet-compile analyze``: CKA matrix of a model pair, the stitch candidates, and ``cka.png``."""

from __future__ import annotations

from pathlib import Path

import click

from restnet_compile.cli.base import TOOLCHAIN, requires


def _shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"expected C,H,W such as 3,64,64; got {text!r}", param_hint="--input-shape")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _check_out(out: Path) -> None:
    import os

    from restnet_compile.errors import BadInputError

    if out.exists() and not out.is_dir():
        raise BadInputError(f"output {out} is a file, not a folder")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"output {out} is not writable")


@click.command("analyze")
@click.option("--large", help="Large model: registered name (demo, torchvision) or path/file.py:Class.")
@click.option("--small", help="Small model: registered name or path/file.py:Class.")
@click.option("--large-weights", help="state_dict file of the large model (torch.load weights_only).")
@click.option("--small-weights", help="state_dict file of the small model.")
@click.option("--data", "dataset", help="Dataset: mnist5k, folder:DIR, npz:FILE, a directory or a .npz file.")
@click.option("--input-shape", help="C,H,W of torchvision / user models, e.g. 3,64,64.")
@click.option("--num-classes", type=int, help="Classifier width of torchvision / user models.")
@click.option("--order", type=click.Choice(["large-small", "small-large"]), help="Stitch order (default large-small).")
@click.option("--samples", type=click.IntRange(min=4), help="Calibration images to use (default: all of the split).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Build config YAML.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder for cka.png."
)
@requires(*TOOLCHAIN)
def analyze_cmd(
    large: str | None,
    small: str | None,
    large_weights: str | None,
    small_weights: str | None,
    dataset: str | None,
    input_shape: str | None,
    num_classes: int | None,
    order: str | None,
    samples: int | None,
    config_path: Path | None,
    out: Path,
) -> None:
    """Print the CKA matrix of two models and the stitch candidates; write OUT/cka.png."""
    from restnet_compile import api
    from restnet_compile.config.build import load_build_config

    _check_out(out)
    config = load_build_config(
        config_path,
        large=large,
        small=small,
        large_weights=large_weights,
        small_weights=small_weights,
        dataset=dataset,
        input_shape=_shape(input_shape),
        num_classes=num_classes,
    )
    if order is not None:
        config = config.model_copy(update={"plan": config.plan.model_copy(update={"order": order})})
    result = api.analyze(config, out, samples)
    click.echo(f"CKA ({result.samples} calibration images): rows = {result.large}, columns = {result.small}")
    for label in result.small_blocks:
        click.echo(f"  {label}")
    click.echo(" " * 40 + "".join(f"{'S' + str(j):>7}" for j in range(len(result.small_blocks))))
    for label, row in zip(result.large_blocks, result.cka, strict=True):
        click.echo(f"{label[:39]:40}" + "".join(f"{x:7.3f}" for x in row))
    rule = ", ".join(f"{k}={v}" for k, v in result.rule.items())
    click.echo(f"\n{len(result.candidates)} candidates ({rule}):")
    for c in result.candidates:
        click.echo(f"  {c.id:8} adapter {c.adapter:14} CKA {c.cka:.3f}  {c.flops / 1e6:9.2f} MFLOPs")
    click.echo(f"\nheatmap: {result.heatmap}")
