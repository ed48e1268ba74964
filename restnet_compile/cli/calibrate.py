"""``restnet-compile calibrate``: fit a profile's latency model to latencies measured on the device."""

from __future__ import annotations

from pathlib import Path

import click

from restnet_compile.cli.base import TOOLCHAIN, requires


@click.command("calibrate")
@click.option("--profile", "-p", required=True, help="Device profile to calibrate: built-in name or YAML path.")
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Bundle whose variants were measured (its manifest holds their per-op terms).",
)
@click.option(
    "--measurements",
    type=click.Path(path_type=Path),
    help="CSV: variant,avg[,count,first,curr,min,max,std,p50,p90,p95,p99] in us, one row per variant. "
    "Omit for the host profile to measure here with LiteRT.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Calibrated profile YAML to write.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Host: untimed runs.")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Host: timed runs.")
@requires(*TOOLCHAIN)
def calibrate_cmd(profile: str, bundle_dir: Path, measurements: Path | None, out: Path, warmup: int, runs: int) -> None:
    """Fit efficiency and overheads of PROFILE's latency model to measured latencies; write OUT atomically."""
    from restnet_compile import api

    r = api.calibrate(profile, bundle_dir, out, measurements, warmup, runs)
    p = r.profile.latency_model
    click.echo("| variant | measured median | predicted before | predicted after |\n|---|---|---|---|")
    for vid, (before, after) in sorted(r.predicted.items()):
        click.echo(f"| {vid} | {r.measured[vid].median_ms:.3f} ms | {before:.3f} ms | {after:.3f} ms |")
    click.echo(
        f"\nmedian abs. error {r.fit.mdape_before:.1%} -> {r.fit.mdape_after:.1%}; efficiency {p.efficiency:g}, "
        f"op overhead {p.op_overhead * 1e3:.2f} us, invoke overhead {p.invoke_overhead * 1e3:.2f} us, "
        f"p{r.profile.latency.percentile}/median {p.percentile_factor:g}"
    )
    click.echo(f"calibrated profile: {out}" + (f"  (measurements: {r.csv})" if measurements is None else ""))
