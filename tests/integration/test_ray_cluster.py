"""The smallest build on a real two-node Ray cluster gives the local build's bytes.

The head runs on loopback and runs no task (0 CPUs); the second node (2 CPUs) runs in its own mount namespace with
empty tmpfs mounts over ``/tmp`` and this test's folders, so every task runs where no file of the driver is, as on
another machine
(:mod:`tests.ray_cluster`). The build runs through the command line with ``RAY_ADDRESS`` and a build cache; its
bundle and archive must equal the local build's (fixture ``phone_bundle``, same config) byte for byte, and neither
node may keep a temporary folder of the build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from restnet_compile._util.tempdirs import stale_dirs
from restnet_compile.bundle.result import BuildResult
from tests.cluster_builds import different, run_build, write_config
from tests.integration.conftest import FAST
from tests.ray_cluster import can_isolate, ray_cluster

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not can_isolate(), reason="needs root and unshare for a node without shared files")


def leftovers(folder: Path) -> list[str]:
    """Temporary folders under ``folder`` that builds made and whose process has ended (those of builds still
    running on a shared machine are theirs)."""
    made = r"(?:restnet-bundle-|restnet-compile-features-|restnet-convert-)"
    return sorted(p.name for p in stale_dirs(folder, "", made))


def test_a_two_node_cluster_gives_the_local_builds_bytes(tmp_path: Path, phone_bundle: BuildResult) -> None:
    config = write_config(tmp_path / "build.yaml", FAST)
    with ray_cluster(cpus=0) as cluster:
        cluster.add_node(cpus=2, hide=(tmp_path,))
        built = run_build(config, tmp_path / "dist", cluster.address, tmp_path / "cache")
        assert built.code == 0, built.stderr[-3000:]
        assert leftovers(cluster.node_tmp(0)) == []
    assert different(built.out, phone_bundle.bundle_dir.parent) == []
    said = re.findall(r"export: (\d+) of (\d+) conversions made by other tasks", built.stderr)
    assert said and said[0][0] == said[0][1] != "0", said  # the export task converted nothing itself
    assert any((tmp_path / "cache" / "entries").glob("*/*"))  # the driver stored what the workers computed
