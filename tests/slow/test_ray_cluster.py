"""A build on a real Ray cluster, as an operator runs one: the same bytes as locally, and one line for each failure.

The cluster is a head on loopback that runs no task (0 CPUs, as operators often keep it) and a second node of 1 CPU
inside its own mount namespace, with empty tmpfs mounts over ``/tmp`` and this test's folders (cache, outputs), so
every task runs where no file of the driver is (:mod:`tests.ray_cluster`). Every build runs through the command
line with ``RAY_ADDRESS``, ``threads: 1``.

* The user-model pair (``sequential_net.py:SequentialNet`` -> ``digit_cnn.py:CNN``, weights and model files only
  on the driver's side) with ``feature_store: mmap`` gives the local build's bytes.
* A worker killed while it tunes: the task runs again, said on stderr; the same bytes as locally.
* A node that runs a patched copy of the package is refused in one line naming it (exit 2); a later local build on
  the same cache gives the local bytes (nothing of that worker reached the cache).
* The head killed during tuning: one ``error:`` line and exit code 1, no traceback.
* Something that accepts connections at ``RAY_ADDRESS`` and never answers: one line within ``ray_timeout``.
* No temporary folder of the build is left on either side.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_builds import ROOT, SMALL, different, run_build, start_build, wait_for_event, write_config
from tests.integration.test_ray_cluster import leftovers
from tests.ray_cluster import Cluster, can_isolate, free_port, ray_cluster
from tests.unit.fixture_models import DIGIT_STATS, MNIST, SPECS, trained_path

pytest.importorskip("ray")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_isolate(), reason="needs root and unshare for a node without shared files"),
]

DEMO = {**SMALL, "threads": 1}
USER = {
    **DEMO,
    "large": SPECS["sequential"],
    "small": SPECS["digit_cnn"],
    "large_weights": str(trained_path("sequential")),
    "small_weights": str(trained_path("digit_cnn")),
    "large_preprocess": DIGIT_STATS,
    "small_preprocess": DIGIT_STATS,
    "input_shape": list(MNIST),
    "num_classes": 10,
    "plan": {"max_candidates": 1},
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def local_demo(work: Path) -> Path:
    """The demo pair built locally, ``threads: 1``: the reference bytes."""
    built = run_build(write_config(work / "demo.yaml", DEMO), work / "local-demo", None, None, executor="local")
    assert built.code == 0, built.stderr[-3000:]
    return built.out


@pytest.fixture()
def cluster(work: Path) -> Iterator[Cluster]:
    """A head that runs no task and a node of 1 CPU that sees none of ``work``."""
    with ray_cluster(cpus=0) as c:
        c.add_node(cpus=1, hide=(work,))
        yield c


def test_a_user_model_pair_with_mmap_features_gives_the_local_bytes(work: Path, cluster: Cluster) -> None:
    config = write_config(work / "user-mmap.yaml", {**USER, "feature_store": "mmap"})  # recorded in the manifest
    local = run_build(config, work / "local-user", None, None, executor="local")
    assert local.code == 0, local.stderr[-3000:]
    remote = run_build(config, work / "ray-user", cluster.address, work / "cache-user")
    assert remote.code == 0, remote.stderr[-3000:]
    assert different(remote.out, local.out) == []
    assert leftovers(cluster.node_tmp(0)) == []
    assert leftovers(Path(tempfile.gettempdir())) == []


def test_a_worker_killed_while_tuning_gives_the_same_bytes(work: Path, cluster: Cluster, local_demo: Path) -> None:
    proc = start_build(write_config(work / "demo.yaml", DEMO), work / "ray-killed", cluster.address, work / "c1")
    wait_for_event(proc, "tuning adapters")
    deadline, killed = time.monotonic() + 300, []
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        killed = cluster.node_workers(0)
        time.sleep(0.2)
    assert killed, "no tuning task ran on the second node"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "its worker was lost" in err and "running it again (1/3)" in err
    assert different(work / "ray-killed", local_demo) == []
    assert leftovers(cluster.node_tmp(0)) == []  # the killed worker's folders were swept


def test_a_worker_with_a_patched_package_is_refused(work: Path, local_demo: Path) -> None:
    patched = Path(tempfile.mkdtemp(prefix="rc-patched-", dir="/var/tmp"))  # outside /tmp: the node must see it
    try:
        shutil.copytree(ROOT / "restnet_compile", patched / "restnet_compile")
        tune = patched / "restnet_compile" / "stitching" / "tuning" / "loop.py"
        tune.write_text(tune.read_text(encoding="utf-8") + "\nPATCHED = True\n", encoding="utf-8")
        with ray_cluster(cpus=0) as c:
            c.add_node(cpus=1, hide=(work,), env={"PYTHONPATH": str(patched)})
            config = write_config(work / "demo.yaml", DEMO)
            t0 = time.monotonic()
            built = run_build(config, work / "ray-patched", c.address, work / "c2")
            seconds = time.monotonic() - t0
        assert built.code == 2, built.stderr[-3000:]
        assert len(built.error_lines()) == 1 and "Traceback" not in built.stderr
        line = built.error_lines()[0]
        assert line.startswith("error: executor ray: the worker at ") and " (node " in line
        assert "runs other code than this machine: source " in line
        assert not (work / "ray-patched").exists() or not any((work / "ray-patched").iterdir())
        print(f"patched worker refused in {seconds:.1f} s: {line}")
    finally:
        shutil.rmtree(patched, ignore_errors=True)
    again = run_build(config, work / "local-after", None, work / "c2", executor="local")
    assert again.code == 0, again.stderr[-3000:]
    assert different(again.out, local_demo) == []


def test_the_head_killed_during_tuning_is_one_line(work: Path, cluster: Cluster) -> None:
    proc = start_build(write_config(work / "demo.yaml", DEMO), work / "ray-headless", cluster.address, work / "c3")
    wait_for_event(proc, "tuning adapters")
    cluster.kill_head()
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=300)
    seconds = time.monotonic() - t0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, err[-3000:]
    assert len(errors) == 1 and "lost the Ray cluster at" in errors[0] and "Traceback" not in err, err[-3000:]
    assert err.rstrip().splitlines()[-1] == errors[0]
    print(f"head lost reported in {seconds:.1f} s: {errors[0]}")


@pytest.fixture()
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


def test_a_silent_listener_is_one_line_within_the_timeout(work: Path, silent_listener: str) -> None:
    config = write_config(work / "silent.yaml", {**DEMO, "ray_timeout": 5})
    built = run_build(config, work / "ray-silent", silent_listener, None, timeout=300)  # a hang fails here
    assert built.code == 2, built.stderr[-3000:]
    assert built.error_lines() == [
        f"error: RAY_ADDRESS {silent_listener}: no Ray cluster answered within 5 s (something accepts connections "
        "there but does not answer as a Ray head); start one or unset RAY_ADDRESS for a local instance"
    ]
    print(f"silent listener reported in {built.seconds:.1f} s (process start included)")
