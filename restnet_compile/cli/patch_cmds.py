"""Verbs around bundle patches: ``patch`` (make one from a build config) and ``apply`` (apply one to a bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from restnet_compile.cli.base import TOOLCHAIN, requires
from restnet_compile.cli.options import config_overrides, model_options


@click.command("patch")
@click.argument("old_bundle", type=click.Path(path_type=Path))
@model_options
@click.option("--profile", "-p", help="Device profile (default: the config's).")
@click.option("--target", "-t", help="Export target (default: the profile's).")
@click.option("--seed", type=int, help="Seed for splits, adapter init and tuning.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The patch file to write.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), help="Build cache (as for `build`).")
@click.option("--no-cache", is_flag=True, help="Compute every stage; read and write no cache.")
@requires(*TOOLCHAIN)
def patch_cmd(
    old_bundle: Path,
    config_path: Path | None,
    profile: str | None,
    target: str | None,
    seed: int | None,
    out: Path,
    cache_dir: Path | None,
    no_cache: bool,
    **models: Any,
) -> None:
    """Build the config and write the patch that turns OLD_BUNDLE (a directory or its .tar.gz) into that bundle (only
    what OLD_BUNDLE lacks)."""
    from restnet_compile import api
    from restnet_compile.config.build import load_build_config

    config = load_build_config(config_path, profile=profile, target=target, seed=seed, **config_overrides(models))
    result = api.make_patch(old_bundle, config, out, cache=False if no_cache else (cache_dir or True))
    added = ", ".join(result.variants_added) or "none"
    click.echo(
        f"wrote {result.path}: {result.patch_bytes:,} bytes ({result.patch_bytes / result.bundle_bytes:.1%} of the "
        f"full bundle's {result.bundle_bytes:,}); variants added: {added}"
    )


@click.command("apply")
@click.argument("patch", type=click.Path(path_type=Path))
@click.argument("bundle", type=click.Path(path_type=Path))
def apply_cmd(patch: Path, bundle: Path) -> None:
    """Apply PATCH to BUNDLE all or nothing; on any error BUNDLE stays as it was."""
    from restnet_compile import api

    manifest = api.apply_patch(bundle, patch)
    click.echo(f"patched {bundle}: {len(manifest.shipped())} variants ({', '.join(v.id for v in manifest.shipped())})")
