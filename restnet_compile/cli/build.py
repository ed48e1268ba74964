"""``restnet-compile build``: models + data + profile -> one bundle of switchable variants."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from restnet_compile.bundle._codec import encode
from restnet_compile.cli.base import TOOLCHAIN, requires
from restnet_compile.cli.options import check_names_early, config_overrides, model_options

if TYPE_CHECKING:
    from restnet_compile.bundle.manifest import Manifest
    from restnet_compile.bundle.result import BuildResult, CacheSummary, FleetResult


def summary(result: BuildResult) -> dict[str, Any]:
    """What CI needs from a build: where the files are and what ships."""
    m = result.manifest
    keys = ("id", "kind", "flops", "params", "latency_ms", "ram_bytes", "accuracy_fp32", "accuracy_deployed")
    return {
        "bundle": str(result.bundle_dir),
        "archive": str(result.archive),
        "profile": m.profile.name,
        "target": m.target.name,
        "config_hash": m.config_hash,
        "bundle_model_bytes": m.bundle_model_bytes,
        "shipped": [{k: getattr(v, k) for k in keys} for v in m.shipped()],
        "dropped": {v.id: list(v.reasons) for v in m.variants if not v.selected},
        "rejected_pairs": list(m.stitching.rejected or ()),
        "cache": encode(result.cache),
    }


def rejected_text(manifest: Manifest) -> str:
    """Below the variant table: why there is no stitch candidate, one line per rejected pair (empty otherwise)."""
    lines = manifest.stitching.rejected or ()
    if not lines:
        return ""
    return "".join(["\nno stitch candidate; pairs of blocks rejected:", *(f"\n  {line}" for line in lines)])


def cache_line(cache: CacheSummary) -> str:
    """``cache: reused cka, tune L0-S0 (2 of 4 stages)``, or ``cache: off``."""
    if cache.dir is None:
        return "cache: off"
    reused = cache.reused
    n = len(cache.stages)
    if not reused:
        return f"cache: 0 of {n} stages reused"
    return f"cache: reused {', '.join(reused)} ({len(reused)} of {n} stages)"


def fleet_summary(fleet: FleetResult) -> list[dict[str, Any]]:
    """``--json`` of a build for several profiles: one :func:`summary` per bundle, then one entry per failed profile."""
    failed = [{"profile": f.profile, "error": f.message, "exit_code": f.exit_code} for f in fleet.failures]
    return [summary(r) for r in fleet.bundles] + failed


@click.command("build")
@click.option(
    "--profile",
    "-p",
    "profiles",
    multiple=True,
    help="Device profile: built-in name (see `profiles`) or a YAML path. Repeat it for one bundle per profile from "
    "one CKA and one tuning (a fleet).",
)
@click.option("--target", "-t", help="Export target (default: the profile's). See `targets`.")
@model_options
@click.option("--seed", type=int, help="Seed for splits, adapter init and tuning.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Output directory; the bundle goes to OUT/<profile>-<target>/.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Cache of the expensive stages (CKA matrix, tuned adapters, exports), reused by later builds and after a "
    "crash. Default: $RESTNET_COMPILE_CACHE, else $XDG_CACHE_HOME/restnet-compile, else ~/.cache/restnet-compile.",
)
@click.option("--no-cache", is_flag=True, help="Compute every stage; read and write no cache.")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    help="Run tuning and export jobs in this process (local, the default) or as Ray tasks: on $RAY_ADDRESS's "
    "cluster, else a local instance. Same bytes either way.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where CKA and tuning run (default: cpu).")
@click.option(
    "--max-memory",
    metavar="SIZE",
    help="Memory the build may hold in data, e.g. 4GiB: tuning's prefix features stay in RAM while they fit, else "
    "go to a file on disk (default: a quarter of this machine's RAM).",
)
@click.option(
    "--strict-parity",
    is_flag=True,
    default=None,
    help="Fail the build (exit 4) when any exported variant fails the target's parity rule, instead of dropping a "
    "failing stitched variant with its reason and shipping the rest.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress messages on stderr.")
@click.option(
    "--events",
    is_flag=True,
    help="Progress as JSON lines on stderr (log, stage, advance and cache events) instead of bars.",
)
@click.option(
    "--verbose", "-v", is_flag=True, help="Also show the log lines of the tools the build drives (Ray's own)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary instead of the table.")
@requires(*TOOLCHAIN)
def build_cmd(
    profiles: tuple[str, ...],
    target: str | None,
    config_path: Path | None,
    seed: int | None,
    out: Path,
    cache_dir: Path | None,
    no_cache: bool,
    executor: str | None,
    device: str | None,
    max_memory: str | None,
    strict_parity: bool | None,
    quiet: bool,
    events: bool,
    verbose: bool,
    as_json: bool,
    **models: Any,
) -> None:
    """Build the bundle for one device profile (or one per profile, given several) and print its variant table.

    Finished stages are cached (see --cache-dir), so a build that was killed resumes where it stopped; the bundle
    is byte-identical whether stages came from the cache or not. With several profiles, a profile that fails
    publishes nothing while the others are published; the exit code is the highest of the failures', and --json
    prints a list (see docs/scale.md).
    """
    from restnet_compile.config.build import load_build_config

    overrides = config_overrides(models)
    run = {"executor": executor, "device": device, "max_memory": max_memory, "profiles": list(profiles) or None}
    config = load_build_config(
        config_path,
        target=target,
        seed=seed,
        strict_parity=strict_parity or None,
        verbose=verbose or None,
        **run,
        **overrides,
    )
    check_names_early(config)

    from restnet_compile import api
    from restnet_compile._util.progress import JsonLinesReporter
    from restnet_compile.bundle.result import FleetResult
    from restnet_compile.cli.progress_ui import progress_reporter

    cache = False if no_cache else (cache_dir or True)
    build: Callable[..., BuildResult | FleetResult] = api.build_fleet if len(config.profile_names()) > 1 else api.build
    if config.executor == "ray":
        import os

        from restnet_compile.cli.supervise import outlive_ray

        outlive_ray(os.environ.get("RAY_ADDRESS"))
    if events:
        result = build(config, out, progress=JsonLinesReporter(), cache=cache)
    elif quiet:
        result = build(config, out, cache=cache)
    else:
        with progress_reporter() as reporter:
            result = build(config, out, progress=reporter, cache=cache)
    if isinstance(result, FleetResult):
        show_fleet(result, as_json)
        return
    if as_json:
        click.echo(json.dumps(summary(result), indent=2, sort_keys=True))
        return
    show_bundle(result)
    click.echo(cache_line(result.cache))


def show_bundle(result: BuildResult) -> None:
    """The variant table of one published bundle, where it went and its size."""
    from restnet_compile.report import variant_table

    click.echo(variant_table(result.manifest) + rejected_text(result.manifest))
    click.echo(f"\nbundle: {result.bundle_dir}  ({result.manifest.bundle_model_bytes or 0:,} bytes of models)")
    click.echo(f"archive: {result.archive}")


def show_fleet(fleet: FleetResult, as_json: bool) -> None:
    """Print every bundle of a fleet (or its JSON list) and each failed profile; exit with the fleet's code."""
    if as_json:
        click.echo(json.dumps(fleet_summary(fleet), indent=2, sort_keys=True))
    else:
        for result in fleet.bundles:
            click.echo(f"== {result.bundle_dir.name}")
            show_bundle(result)
            click.echo()
        if fleet.bundles:
            click.echo(cache_line(fleet.bundles[-1].cache))
    for f in fleet.failures:
        click.echo(f"error: profile {f.profile}: {f.message}", err=True)
    if fleet.exit_code:
        raise click.exceptions.Exit(fleet.exit_code)
