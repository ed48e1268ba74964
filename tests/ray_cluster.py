"""A real two-node Ray cluster on this machine, as an operator starts one, for the cluster tests and benchmark.

The head is ``ray start --head`` on loopback with a port and a temporary folder of its own. Each further node is
``ray start --address`` inside its own mount namespace (``unshare -m``, root only) with empty tmpfs mounts over the
system's temporary folder and the given folders (the build's cache and output), so it shares no files with the
driver: it sees only the installed packages and the repository, as another machine with the same install would.
``env`` changes what a node imports (``PYTHONPATH`` to a patched copy of the package).

Every process is started in a session of its own and stopped by its process group, so other Ray instances on the
machine are never touched (``ray stop`` would stop them all).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
#: Nodes join no other cluster, and Ray's memory monitor stays off: on a machine shared with other work it kills
#: workers for memory that other processes hold (the kernel still guards the machine). Token authentication is off:
#: `ray start` turns it on once any local ray.init has written ~/.ray/auth_token, and the test drivers carry no token.
_NODE_ENV = {"RAY_ADDRESS": "", "RAY_memory_monitor_refresh_ms": "0", "RAY_AUTH_MODE": "disabled"}
ROOT = Path(__file__).resolve().parents[1]


def _install_under_tmp() -> list[Path]:
    """The repository and the Python environment where they lie under ``/tmp``, outermost only."""
    paths = sorted({p for p in (ROOT, Path(sys.prefix).resolve()) if p.is_relative_to("/tmp")})
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_isolate() -> bool:
    """Whether this process may run a node in a mount namespace of its own with tmpfs mounts (root, ``unshare``,
    and the right to mount: a container may refuse it)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    target = tempfile.mkdtemp(prefix="rc-mount-")
    try:
        probe = ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", target]
        return subprocess.run(probe, capture_output=True).returncode == 0
    finally:
        os.rmdir(target)


def _ports() -> list[str]:
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


@dataclass
class Cluster:
    """A started cluster: its address, the processes of its nodes (by group) and its temporary folder."""

    address: str
    temp: Path
    head: subprocess.Popen
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def add_node(self, cpus: int = 1, hide: tuple[Path, ...] = (), env: dict[str, str] | None = None) -> None:
        """A worker node of ``cpus`` CPUs in its own mount namespace, tmpfs over ``/tmp`` and each of ``hide``; the
        install (the repository and the environment) stays visible where it lies under ``/tmp`` (a clone there)."""
        # the install is bound to a folder outside /tmp, then moved back onto its own path above the tmpfs
        keep = [(p, Path(tempfile.mkdtemp(prefix="rc-hold-", dir="/var/tmp"))) for p in _install_under_tmp()]
        mounts = "".join(f"mount --bind {p} {hold} && " for p, hold in keep)
        mounts += "".join(f"mkdir -p {p} && mount -t tmpfs tmpfs {p} && " for p in (Path("/tmp"), *hide))
        mounts += "".join(f"mkdir -p {p} && mount --move {hold} {p} && " for p, hold in keep)
        args = [f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--block"]
        start = " ".join([RAY, "start", *args, "--disable-usage-stats", *_ports()])
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts}exec {start}"],
            env={**os.environ, **_NODE_ENV, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=(self.temp / f"node{len(self.nodes)}.log").open("wb"),
            start_new_session=True,
        )
        self.nodes.append(proc)
        try:
            self.wait_nodes(len(self.nodes) + 1)
        finally:  # empty here (the node's bind mounts live in its own namespace); rmdir never deletes contents
            for _, hold in keep:
                with contextlib.suppress(OSError):
                    hold.rmdir()

    def wait_nodes(self, count: int, timeout: float = 90.0) -> None:
        """Wait until ``count`` nodes are alive in the cluster."""
        code = (
            "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-c", code, self.address], capture_output=True, text=True, env=_driver_env()
            )
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster at {self.address} did not reach {count} nodes")

    def node_tmp(self, k: int = 0) -> Path:
        """Node ``k``'s ``/tmp`` as that node sees it (its own tmpfs), seen from here."""
        return Path(f"/proc/{self.nodes[k].pid}/root/tmp")

    def node_workers(self, k: int = 0, title: str = "ray::_on_worker") -> list[int]:
        """Process ids of node ``k``'s workers now running a task (Ray sets the process title to the task's): the
        processes in that node's mount namespace."""
        namespace = os.readlink(f"/proc/{self.nodes[k].pid}/ns/mnt")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                same = os.readlink(entry / "ns" / "mnt") == namespace
                cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if same and cmd.startswith(title):
                found.append(int(entry.name))
        return found

    def kill_head(self) -> None:
        """Kill the head node's processes at once (SIGKILL to its process group)."""
        _kill(self.head, signal.SIGKILL)

    def stop(self) -> None:
        """Stop every node this cluster started, by process group, and remove its temporary folder."""
        for proc in [*self.nodes, self.head]:
            _kill(proc, signal.SIGTERM)
        for proc in [*self.nodes, self.head]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _kill(proc, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)


def _kill(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the session's group: the node's raylet, stores and workers
    except (ProcessLookupError, PermissionError):
        pass


def _driver_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@contextmanager
def ray_cluster(cpus: int = 1) -> Iterator[Cluster]:
    """A head of ``cpus`` CPUs on a free loopback port (more nodes: :meth:`Cluster.add_node`); stopped after."""
    temp = Path(tempfile.mkdtemp(prefix="rc-ray-"))
    port = free_port()
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            f"--temp-dir={temp / 'ray'}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--block",
            f"--ray-client-server-port={free_port()}",
            *_ports(),
        ],
        env={**_driver_env(), **_NODE_ENV},
        stdout=subprocess.DEVNULL,
        stderr=(temp / "head.log").open("wb"),
        start_new_session=True,
    )
    cluster = Cluster(f"127.0.0.1:{port}", temp, head)
    try:
        cluster.wait_nodes(1)
        yield cluster
    finally:
        cluster.stop()
