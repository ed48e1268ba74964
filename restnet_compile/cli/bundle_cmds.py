"""Verbs around a built bundle: ``inspect``, ``verify``, ``run``, ``bench``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

BUNDLE = click.argument("bundle", type=click.Path(path_type=Path))
JSON = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary.")


@click.command("inspect")
@BUNDLE
@JSON
def inspect_cmd(bundle: Path, as_json: bool) -> None:
    """Check BUNDLE's checksums and print its variant table (BUNDLE: a directory or its .tar.gz)."""
    from restnet_compile.api import inspect
    from restnet_compile.report import variant_table

    manifest = inspect(bundle)
    if as_json:
        click.echo(json.dumps(manifest.to_json_dict(), indent=2, sort_keys=True))
        return
    p, t = manifest.profile, manifest.target
    click.echo(f"profile {p.name} ({p.soc}), target {t.name} ({t.format}, {t.dtype})")
    click.echo(variant_table(manifest))


@click.command("verify")
@BUNDLE
@JSON
def verify_cmd(bundle: Path, as_json: bool) -> None:
    """Check BUNDLE's checksums, then re-run its reference inputs with the device runtime (a directory or .tar.gz)."""
    from restnet_compile.api import verify

    checks = verify(bundle)
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
        return
    for c in checks:
        click.echo(
            f"{c.variant:8} ok: same top-1 as built on {c.top1_same_as_deployed:.0%}, max |diff| "
            f"{c.max_abs_diff_deployed:.2e}, agreement with PyTorch {c.top1_agreement_torch:.0%}"
        )
    click.echo(f"verified {len(checks)} variants of {bundle}")


@click.command("run")
@BUNDLE
@click.option("--input", "image", required=True, type=click.Path(path_type=Path), help="PNG/JPEG or .npy image.")
@click.option("--budget", help="Latency budget such as 5ms: the most accurate variant within it runs.")
@click.option("--variant", help="Run this variant instead of choosing by budget.")
@JSON
def run_cmd(bundle: Path, image: Path, budget: str | None, variant: str | None, as_json: bool) -> None:
    """Classify one image with the variant that fits the budget."""
    from restnet_compile._util.units import parse_duration_ms
    from restnet_compile.api import predict
    from restnet_compile.errors import BadInputError

    try:
        budget_ms = parse_duration_ms(budget, "--budget") if budget else None
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    result = predict(bundle, image, budget_ms, variant)
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    click.echo(
        f"class {result.label} by variant {result.variant} in {result.latency_ms:.3f} ms (steady: median of "
        f"{result.runs} runs after warm-up; first run {result.first_run_ms:.3f} ms, with the interpreter's set-up)"
    )


@click.command("bench")
@BUNDLE
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(0))
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1))
@JSON
def bench_cmd(bundle: Path, warmup: int, runs: int, as_json: bool) -> None:
    """Latency of every variant of BUNDLE on this machine (interleaved runs, p50 / p90)."""
    from restnet_compile.api import bench

    timings = bench(bundle, warmup, runs)
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in timings], indent=2))
        return
    click.echo(f"{'variant':8} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8} {'min ms':>8}  ({runs} runs)")
    for t in timings:
        click.echo(f"{t.variant:8} {t.p50_ms:8.3f} {t.p90_ms:8.3f} {t.mean_ms:8.3f} {t.min_ms:8.3f}")
