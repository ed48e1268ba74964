"""Executors: how the build's independent jobs run (each candidate's tuning, each profile's export and parity).

* ``local`` (the default and the tested path) runs each job in this process, one after the other.
* ``ray`` runs each job as a Ray task with declared resources (``num_cpus`` = the build's ``threads``; one GPU for
  tuning when the build's device is ``cuda``). A worker is treated as another machine that shares nothing with the
  caller but Ray: inputs (models, data, prefix features) go through Ray's object store (:meth:`Executor.share`),
  results come back as values, and only the caller writes the build cache and the bundle. The cluster is the one at
  ``$RAY_ADDRESS``; without it a new local instance is started for the build (even where ``ray start`` ran) and shut
  down after it (one already started in this process, e.g. by a test, is used and left running).

Each task first proves that it runs the caller's code: the package's source digest and the tool versions
(:func:`restnet_compile.pipeline.cache.fingerprint.environment`) must equal the caller's, or the task refuses and the
build stops with one line naming the node and the difference. Each task runs under the build's numeric state
(:func:`restnet_compile._util.torch_state.deterministic`: seed, thread pools, denormal flushing, deterministic
algorithms) and starts from the caller's random state, so the bundles are byte-identical to the local executor's.

Nothing waits silently: connecting is bounded by ``timeout`` seconds, a job that no live node can run is reported
within ``timeout`` seconds, a job whose worker died is said on the progress stream and run again (at most
:data:`MAX_RETRIES` times), and a lost head is one line (:class:`~restnet_compile.errors.ClusterError`).

What a job is, the executor interface and the local executor are in :mod:`.jobs`.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from restnet_compile._util.progress import Reporter
from restnet_compile._util.quiet import quiet_native_output
from restnet_compile._util.tempdirs import remove_stale
from restnet_compile.errors import BadInputError, ClusterError, RestnetError
from restnet_compile.pipeline.jobs import Done, Executor, Job, LocalExecutor, Started, T

#: Times a job whose worker died is run again (a failure inside the job is not retried).
MAX_RETRIES = 3
EXECUTORS = ("local", "ray")
#: Default seconds to reach a cluster, and for a job to find a node that can run it.
TIMEOUT = 30.0
#: Prefix of a worker's temporary folder for one bundle (a killed worker's is removed by the next job there).
BUNDLE_PREFIX = "restnet-bundle-"
_POLL = 2.0
# HTTP/2 client preface and an empty SETTINGS frame: a Ray head (gRPC) answers with a frame of its own.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


class WorkerMismatchError(BadInputError):
    """A worker runs other code or other tool versions than the caller."""


def worker_environment() -> dict[str, Any]:
    """What a worker must share with the caller: package version and source digest, tool versions, platform."""
    from restnet_compile.pipeline.cache.fingerprint import environment

    return environment()


def differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    """``name expected != found`` for every leaf of two environments that differs."""
    out: list[str] = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            short = (lambda v: v[:12] if isinstance(v, str) and len(v) == 64 else v) if key == "source" else str
            out.append(f"{prefix}{key} {short(a)} here, {short(b)} there")
    return out


def _node() -> str:
    import ray

    ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    return f"{ip} (node {ray.get_runtime_context().get_node_id()[:12]})"


def sweep_temp() -> list[str]:
    """Remove the temporary folders that dead processes of this machine left (a killed worker's): their names."""
    from restnet_compile.data.idx import IDX_PREFIX
    from restnet_compile.export.tflite_convert import CONVERT_PREFIX
    from restnet_compile.stitching.tuning.store import RECEIVED_PREFIX

    parent = Path(tempfile.gettempdir())
    prefixes = (BUNDLE_PREFIX, RECEIVED_PREFIX, CONVERT_PREFIX, IDX_PREFIX)
    return [p.name for prefix in prefixes for p in remove_stale(parent, prefix)]


def _on_worker(expected: dict[str, Any], seed: int, threads: int, rng: torch.Tensor, box: list[Any]) -> Done[Any]:
    """A job on a Ray worker: refused unless the worker runs the caller's code; under the build's numeric state and
    from the caller's random state; the worker's own temporary files are removed after it.

    ``box`` holds a reference to the job's function and arguments, fetched only once the worker is known to run the
    caller's code (a worker with other code could not even read them).
    """
    import ray

    from restnet_compile._util.torch_state import deterministic
    from restnet_compile.stitching.tuning.store import release_received

    log: list[str] = []
    try:
        diff = differences(expected, worker_environment())
        if diff:
            mismatch = WorkerMismatchError(
                f"executor ray: the worker at {_node()} runs other code than this machine: {'; '.join(diff)}; "
                "install the same restnet-compile and tools on every node"
            )
            return Done(None, mismatch, rng, log)
        fn, args = ray.get(box[0])
        args = [ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args]
        with deterministic(seed, threads):
            torch.set_rng_state(rng)
            error: RestnetError | None = None
            try:
                value = fn(*args, progress=Reporter(log.append))
            except RestnetError as exc:
                value, error = None, exc
            return Done(value, error, torch.get_rng_state(), log)
    finally:
        release_received()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RayExecutor(Executor):
    """Runs jobs as Ray tasks (see the module docstring)."""

    name = "ray"
    remote = True

    def __init__(self, ray: Any, seed: int, threads: int, timeout: float = TIMEOUT, address: str = "") -> None:
        self.ray = ray
        self.seed = seed
        self.threads = threads
        self.timeout = timeout
        self.address = address or "the local Ray instance"
        self.expected = worker_environment()
        self._task = ray.remote(_on_worker)
        self._registered: set[str] = set()

    def _by_value(self) -> None:
        """Send the modules of user model files by value: a worker cannot import them from a file it lacks."""
        from restnet_compile.models.sources import USER_MODULE_PREFIX

        for name, module in list(sys.modules.items()):
            if name.startswith(USER_MODULE_PREFIX) and name not in self._registered:
                self.ray.cloudpickle.register_pickle_by_value(module)
                self._registered.add(name)

    def share(self, obj: T) -> T:
        self._by_value()
        try:
            ref: T = self.ray.put(obj)  # a task given the reference receives the object itself
            return ref
        except RestnetError:
            raise
        except Exception as exc:  # an input that could not be read while it was serialised (a vanished file)
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, RestnetError):
                raise cause from None
            raise

    def _submit(self, job: Job, payload: Any, rng: torch.Tensor) -> Any:
        opts = {"num_cpus": job.num_cpus, "num_gpus": job.num_gpus, "max_retries": 0}
        return self._task.options(**opts).remote(self.expected, self.seed, self.threads, rng, [payload])

    def start(self, jobs: list[Job]) -> Started:
        rng = torch.get_rng_state()
        payloads = [self.share((j.fn, j.args)) for j in jobs]
        longest_first = sorted(range(len(jobs)), key=lambda k: -jobs[k].cost)  # stable: equal costs keep their order
        pending = {self._submit(jobs[k], payloads[k], rng): (k, 0) for k in longest_first}
        return Started(list(jobs), (rng, payloads, pending))

    def cancel(self, started: Started) -> None:
        for ref in started.handle[2]:
            try:
                self.ray.cancel(ref)
            except Exception:  # done already, or its node gone: nothing left to stop
                pass

    def finish(
        self, started: Started, progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        jobs = started.jobs
        rng, payloads, pending = started.handle
        out: dict[int, Done[Any]] = {}
        stuck = time.monotonic()
        while pending:
            ready = self._wait(list(pending))
            if not ready:
                self._check_runnable([jobs[k] for k, _ in pending.values()], stuck)
                continue
            stuck = time.monotonic()
            k, tries = pending.pop(ready[0])
            result = self._get(ready[0], jobs[k], tries, progress)
            if result is None:
                pending[self._submit(jobs[k], payloads[k], rng)] = (k, tries + 1)
                continue
            if isinstance(result.error, WorkerMismatchError):
                raise result.error  # nothing a mismatched worker made is used or stored
            out[k] = result
            for line in result.log:
                progress(line)
            if done is not None:
                done(k, result)
        return [out[k] for k in range(len(jobs))]

    def _wait(self, refs: list[Any]) -> list[Any]:
        try:
            ready: list[Any] = self.ray.wait(refs, num_returns=1, timeout=_POLL)[0]
        except Exception as exc:
            raise self._lost(exc) from None
        if not ready:
            self._check_head()
        return ready

    def _check_head(self) -> None:
        """Raise at once when the head's port refuses connections (Ray itself would retry for a minute, then exit)."""
        try:
            host, _, port = str(self.ray.get_runtime_context().gcs_address).rpartition(":")
            socket.create_connection((host, int(port)), timeout=self.timeout).close()
        except ConnectionRefusedError as exc:
            raise self._lost(exc) from None
        except (OSError, ValueError, AttributeError):
            pass  # slow or unknown: the next wait tells

    def _get(self, ref: Any, job: Job, tries: int, progress: Reporter) -> Done[Any] | None:
        """The job's outcome; None when its worker died and it is to run again."""
        exceptions = self.ray.exceptions
        try:
            done: Done[Any] = self.ray.get(ref)
            return done
        except exceptions.RayTaskError as exc:  # the job's own error: raised here as the local executor raises it
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if cause is None:
                raise
            raise cause from None
        except (
            exceptions.WorkerCrashedError,
            exceptions.NodeDiedError,
            exceptions.ObjectLostError,
            exceptions.OutOfMemoryError,  # Ray's memory monitor killed the worker
        ) as exc:
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            if tries >= MAX_RETRIES:
                raise ClusterError(
                    f"executor ray: {job.label}: its worker was lost {tries + 1} times, last {reason}"
                ) from None
            progress(f"ray: {job.label}: its worker was lost ({reason}); running it again ({tries + 1}/{MAX_RETRIES})")
            return None
        except Exception as exc:
            raise self._lost(exc) from None

    def _lost(self, exc: BaseException) -> ClusterError:
        return ClusterError(
            f"executor ray: lost the Ray cluster at {self.address} ({type(exc).__name__}: {_first_line(exc)}); "
            "start it again and rerun (finished stages are in the build cache)"
        )

    def _nodes(self) -> list[dict[str, Any]]:
        try:
            return [n for n in self.ray.nodes() if n.get("Alive")]
        except Exception as exc:
            raise self._lost(exc) from None

    def _check_runnable(self, waiting: list[Job], since: float) -> None:
        """Raise when for ``timeout`` seconds no job has finished and no live node can run a waiting job."""
        if time.monotonic() - since < self.timeout:
            return
        nodes = self._nodes()
        for job in waiting:
            if not any(_fits(n, job.num_cpus, job.num_gpus) for n in nodes):
                raise ClusterError(
                    f"executor ray: {job.label} cannot be scheduled: no live node of the cluster has "
                    f"{job.num_cpus} CPUs"
                    + (f" and {job.num_gpus:g} GPU" if job.num_gpus else "")
                    + f" free for it after {self.timeout:g} s ({len(nodes)} nodes live)"
                )

    def check_resources(self, num_cpus: int, num_gpus: float) -> None:
        """Refuse a cluster on which no single node can run a job of ``num_cpus`` CPUs (and ``num_gpus`` GPUs)."""
        nodes = self._nodes()
        if not any(_fits(n, num_cpus, 0) for n in nodes):
            best = max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0)
            raise BadInputError(
                f"executor ray: each job needs threads = {num_cpus} CPUs on one node, but the largest of the "
                f"cluster's {len(nodes)} nodes has {best:g}; lower threads or add a node with more CPUs"
            )
        if not any(_fits(n, 0, num_gpus) for n in nodes):
            raise BadInputError(
                "executor ray: device cuda, but no node of the Ray cluster has a GPU; use device cpu or auto"
            )

    def sweep(self) -> None:
        """Remove what killed workers left in each live node's temporary folder (best effort, bounded)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = self.ray.remote(sweep_temp)
        try:
            refs = [
                task.options(
                    num_cpus=0,
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                ).remote()
                for n in self._nodes()
            ]
            self.ray.wait(refs, num_returns=len(refs), timeout=self.timeout)
        except Exception:  # a node that left meanwhile: nothing of it to clean from here
            pass


def _fits(node: dict[str, Any], num_cpus: float, num_gpus: float) -> bool:
    res = node.get("Resources", {})
    return bool(res.get("CPU", 0) >= num_cpus and res.get("GPU", 0) >= num_gpus)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "executor ray: ray is not installed; install the 'ray' extra: pip install 'restnet-compile[ray]'"
        ) from None
    return ray


def probe_address(address: str, timeout: float = TIMEOUT) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) where no Ray cluster answers, within ``timeout`` seconds.

    Nothing listening is refused at once; something that accepts the connection but does not answer the gRPC
    handshake a Ray head answers (a wrong port, a hung process) is refused after ``timeout``. ``ray.init`` would
    retry for minutes, or wait forever. ``auto`` and ``local`` are left to Ray.
    """
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise BadInputError(f"RAY_ADDRESS {address!r}: expected host:port, ray://host:port, auto or local")
    hint = "start one or unset RAY_ADDRESS for a local instance"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(_H2_HELLO)
            answer = sock.recv(9)
    except TimeoutError:
        raise BadInputError(
            f"RAY_ADDRESS {address}: no Ray cluster answered within {timeout:g} s (something accepts connections "
            f"there but does not answer as a Ray head); {hint}"
        ) from None
    except OSError as exc:
        raise BadInputError(
            f"RAY_ADDRESS {address}: no Ray cluster answers there ({exc.strerror or exc}); {hint}"
        ) from None
    if len(answer) < 9 or answer[3] != 0x04:  # not an HTTP/2 SETTINGS frame: not a gRPC server
        raise BadInputError(f"RAY_ADDRESS {address}: what answers there is not a Ray cluster; {hint}")


@contextmanager
def open_executor(
    kind: str, seed: int, threads: int, num_gpus: float = 0.0, timeout: float = TIMEOUT, verbose: bool = False
) -> Iterator[Executor]:
    """The executor ``kind`` for one build; a Ray instance it started, and any environment change, is undone after.

    Raises:
        BadInputError: an unknown kind, ray not installed, no cluster answering at ``$RAY_ADDRESS`` within
            ``timeout`` seconds, or a cluster with no node that can run one job (exit code 2, before anything is
            written).
    """
    if kind == "local":
        yield LocalExecutor()
        return
    if kind != "ray":
        raise BadInputError(f"executor {kind!r} unknown; valid choices: {', '.join(EXECUTORS)}")
    ray = _import_ray()
    if ray.is_initialized():  # started by the caller: theirs to shut down
        executor = RayExecutor(ray, seed, threads, timeout)
        executor.check_resources(threads, num_gpus)
        yield executor
        return
    environ = dict(os.environ)
    address = os.environ.get("RAY_ADDRESS")
    if address:
        probe_address(address, timeout)
    try:
        # "local": a new instance of this machine's CPUs even where `ray start` left one to join
        opts: dict[str, Any] = {"address": address} if address else {"address": "local", "num_cpus": os.cpu_count()}
        try:
            with nullcontext() if verbose else quiet_native_output(keep_tail_on_error=0):  # Ray's own lines
                ray.init(
                    **opts, include_dashboard=False, logging_level="INFO" if verbose else "ERROR", log_to_driver=verbose
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadInputError(f"executor ray: cannot start or reach a Ray cluster: {_first_line(exc)}") from None
        executor = RayExecutor(ray, seed, threads, timeout, address or "")
        executor.check_resources(threads, num_gpus)
        yield executor
        executor.sweep()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.environ.clear()
        os.environ.update(environ)
