"""``restnet-compile firmware``: a TensorFlow Lite Micro firmware project for a tflm-int8 bundle, built and run."""

from __future__ import annotations

from pathlib import Path

import click

CPUS = ("host", "cortex-m4", "cortex-m7", "cortex-m55")


@click.command("firmware")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--tflm",
    type=click.Path(path_type=Path),
    envvar="RESTNET_TFLM_DIR",
    help="TensorFlow Lite Micro source tree (its tools/make/downloads in place). Default: $RESTNET_TFLM_DIR.",
)
@click.option("--cpu", required=True, help=f"Target CPU: {', '.join(CPUS)}.")
@click.option("--kernels", default="reference", show_default=True, help="TFLite Micro kernels: reference, cmsis-nn.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Firmware project folder to write.")
@click.option("--run", is_flag=True, help="Run it (natively, or under qemu-system-arm) and compare every variant.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Where TFLite Micro libraries are kept. Default: $RESTNET_TFLM_CACHE, else tflm/ in the build cache folder.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    help="Reference inputs the firmware runs per variant (default: all of reference.npz).",
)
def firmware_cmd(
    bundle: Path,
    tflm: Path | None,
    cpu: str,
    kernels: str,
    out: Path,
    run: bool,
    cache_dir: Path | None,
    samples: int | None,
) -> None:
    """Write, build and optionally run the TensorFlow Lite Micro firmware of BUNDLE (a tflm-int8 bundle)."""
    from restnet_compile import api

    r = api.firmware(
        bundle, tflm, cpu, out, kernels, run, cache_dir, progress=lambda m: click.echo(m, err=True), samples=samples
    )
    f, ram = r.flash, r.ram
    click.echo(
        f"flash {f['total']:,} B: model {f['model']:,} (bundle {r.bundle_model_bytes:,}), runtime {f['runtime']:,}, "
        f"tflm {f['tflm']:,}, libc {f['libc']:,}, reference inputs {f['reference']:,}"
    )
    click.echo(f"ram {ram['total']:,} B: .data {ram['data']:,}, .bss {ram['bss']:,} (arena {ram['arena']:,})")
    for v in r.variants or ():
        same = "bit-exact" if v.bit_exact else f"max int8 diff {v.max_int8_diff}, top-1 {v.top1_agreement:.0%}"
        click.echo(
            f"{v.id:8} {same} vs TFLite Micro (Python); arena used {v.arena_used_bytes:,} B of "
            f"{v.arena_bytes_estimate:,} estimated; max |diff| vs reference.npz {v.max_abs_diff_deployed:.2e}"
        )
    click.echo(f"firmware: {r.elf}")
