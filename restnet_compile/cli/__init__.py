"""Command-line interface: a thin layer over :mod:`restnet_compile.api`, one module per verb.

Exit codes: 0 ok, 1 internal error, 2 bad input, 3 no variant fits the profile, 4 parity failure, 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from restnet_compile import __version__
from restnet_compile.cli.analyze import analyze_cmd
from restnet_compile.cli.base import run_guarded
from restnet_compile.cli.blocks import blocks_cmd
from restnet_compile.cli.build import build_cmd
from restnet_compile.cli.bundle_cmds import bench_cmd, inspect_cmd, run_cmd, verify_cmd
from restnet_compile.cli.calibrate import calibrate_cmd
from restnet_compile.cli.firmware import firmware_cmd
from restnet_compile.cli.listing import profiles_cmd, targets_cmd
from restnet_compile.cli.patch_cmds import apply_cmd, patch_cmd

EPILOG = (
    "Exit codes: 0 ok; 1 internal error; 2 bad input (unknown name, invalid file or option); "
    "3 no variant fits the profile; 4 an exported variant failed parity with PyTorch; 130 interrupted (Ctrl-C)."
)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="restnet-compile")
def cli() -> None:
    """Compile two pre-trained image classifiers into one bundle of stitched, switchable variants per device."""


cli.add_command(build_cmd)
cli.add_command(calibrate_cmd)
cli.add_command(analyze_cmd)
cli.add_command(blocks_cmd)
cli.add_command(inspect_cmd)
cli.add_command(verify_cmd)
cli.add_command(run_cmd)
cli.add_command(bench_cmd)
cli.add_command(patch_cmd)
cli.add_command(apply_cmd)
cli.add_command(firmware_cmd)
cli.add_command(profiles_cmd)
cli.add_command(targets_cmd)


def main() -> None:
    """Console-script entry point."""
    from restnet_compile.cli import supervise

    supervise.ENABLED = True
    sys.exit(run_guarded(cli))
