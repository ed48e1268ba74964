"""Executors: how the build's independent jobs run (each candidate's tuning, each profile's export and parity).

* ``local`` (the default and the tested path) runs each job in this process, one after the other.
* ``ray`` runs each job as a Ray task with declared resources (``num_cpus`` = the build's ``threads``; one GPU for
  tuning when the build's device is ``cuda``). Big inputs (models, data, prefix features) go through Ray's object
  store once (:meth:`Executor.share`); a task whose worker dies is retried (``max_retries``). The cluster is the one
  at ``$RAY_ADDRESS``; without it a local instance is started for the build and shut down after it (one already
  started in this process, e.g. by a test, is used and left running). Each task runs under the build's torch state
  (:func:`restnet_compile._util.torch_state.deterministic`: threads, denormal flushing, deterministic algorithms) and
  starts from the caller's random state, so the bundles are byte-identical to the local executor's.

A job is a function at module level (workers import it by name) that takes a ``progress`` keyword; on a worker it
gets a reporter that collects log lines, which the caller replays when the job is done.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit

import torch

from restnet_compile._util.progress import Reporter
from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.errors import BadInputError, RestnetError

T = TypeVar("T")

#: Times Ray runs a task again after its worker died (a failure inside the task is not retried).
MAX_RETRIES = 3
EXECUTORS = ("local", "ray")
_PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    """One job: ``fn(*args, progress=...)``, its label for progress lines and the resources it declares."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label: str
    num_cpus: int = 1
    num_gpus: float = 0.0


@dataclass(frozen=True)
class Done(Generic[T]):
    """What a job gave: its value or the build error it raised, torch's random state after it, its log lines."""

    value: T | None
    error: RestnetError | None
    rng: torch.Tensor
    log: list[str] = field(default_factory=list)

    def get(self) -> T:
        """The value, or the job's error raised here."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


#: Called with a job's index and outcome as each job finishes.
OnDone: TypeAlias = "Callable[[int, Done[Any]], None]"


class Executor(ABC):
    """Runs a build's jobs: :class:`LocalExecutor` or :class:`RayExecutor`.

    Attributes:
        name: ``local`` or ``ray``.
        remote: Whether jobs run in other processes (their inputs and results are then copied).
    """

    name: str
    remote: bool

    @abstractmethod
    def share(self, obj: T) -> T:
        """``obj`` as jobs take it: itself in process, a reference to one stored copy on Ray."""

    @abstractmethod
    def run(
        self, jobs: list[Job], progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        """Every job's outcome, in ``jobs``' order; ``done(index, outcome)`` is called as each one finishes."""


class LocalExecutor(Executor):
    """Runs jobs in this process, one after the other (the default, and the tested path)."""

    name = "local"
    remote = False

    def share(self, obj: T) -> T:
        return obj

    def run(
        self, jobs: list[Job], progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        out = []
        for k, job in enumerate(jobs):
            try:
                value, error = job.fn(*job.args, progress=progress), None
            except RestnetError as exc:
                value, error = None, exc
            out.append(Done(value, error, torch.get_rng_state()))
            if done is not None:
                done(k, out[-1])
        return out


def _on_worker(fn: Callable[..., Any], seed: int, threads: int, rng: torch.Tensor, *args: Any) -> Done[Any]:
    """A job on a Ray worker, under the build's torch state and from the caller's random state."""
    from restnet_compile._util.torch_state import deterministic

    log: list[str] = []
    with deterministic(seed, threads):
        torch.set_rng_state(rng)
        try:
            value, error = fn(*args, progress=Reporter(log.append)), None
        except RestnetError as exc:
            value, error = None, exc
        return Done(value, error, torch.get_rng_state(), log)


class RayExecutor(Executor):
    """Runs jobs as Ray tasks (see the module docstring)."""

    name = "ray"
    remote = True

    def __init__(self, ray: Any, seed: int, threads: int) -> None:
        self.ray = ray
        self.seed = seed
        self.threads = threads
        self._task = ray.remote(_on_worker)

    def share(self, obj: T) -> T:
        ref: T = self.ray.put(obj)  # a task given the reference receives the object itself
        return ref

    def run(
        self, jobs: list[Job], progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        rng = torch.get_rng_state()
        refs = [
            self._task.options(num_cpus=j.num_cpus, num_gpus=j.num_gpus, max_retries=MAX_RETRIES).remote(
                j.fn, self.seed, self.threads, rng, *j.args
            )
            for j in jobs
        ]
        index = {ref: k for k, ref in enumerate(refs)}
        out: dict[int, Done[Any]] = {}
        waiting = list(refs)
        while waiting:
            ready, waiting = self.ray.wait(waiting, num_returns=1)
            k = index[ready[0]]
            out[k] = self.ray.get(ready[0])
            for line in out[k].log:
                progress(line)
            if done is not None:
                done(k, out[k])
        return [out[k] for k in range(len(jobs))]

    def check_resources(self, num_cpus: int, num_gpus: float) -> None:
        """Refuse a cluster on which a job of ``num_cpus`` CPUs (and ``num_gpus`` GPUs) could never be scheduled."""
        total = self.ray.cluster_resources()
        if total.get("CPU", 0) < num_cpus:
            raise BadInputError(
                f"executor ray: the cluster has {total.get('CPU', 0):g} CPUs but each job needs threads = {num_cpus}; "
                "lower threads or add CPUs"
            )
        if total.get("GPU", 0) < num_gpus:
            raise BadInputError("executor ray: device cuda, but the Ray cluster has no GPU; use device cpu or auto")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "executor ray: ray is not installed; install the 'ray' extra: pip install 'restnet-compile[ray]'"
        ) from None
    return ray


def probe_address(address: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) that nothing answers on, within a few seconds.

    ``ray.init`` retries an unreachable address for minutes; ``auto`` and ``local`` are left to Ray.
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
    try:
        socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
    except OSError as exc:
        raise BadInputError(
            f"RAY_ADDRESS {address}: no Ray cluster answers there ({exc.strerror or exc}); start one or unset "
            "RAY_ADDRESS for a local instance"
        ) from None


@contextmanager
def open_executor(
    kind: str, seed: int, threads: int, num_gpus: float = 0.0, verbose: bool = False
) -> Iterator[Executor]:
    """The executor ``kind`` for one build; a Ray instance it started, and any environment change, is undone after.

    Raises:
        BadInputError: an unknown kind, ray not installed, an unreachable ``$RAY_ADDRESS``, or a cluster too small
            for one job (exit code 2, before anything is written).
    """
    if kind == "local":
        yield LocalExecutor()
        return
    if kind != "ray":
        raise BadInputError(f"executor {kind!r} unknown; valid choices: {', '.join(EXECUTORS)}")
    ray = _import_ray()
    if ray.is_initialized():  # started by the caller: theirs to shut down
        executor = RayExecutor(ray, seed, threads)
        executor.check_resources(threads, num_gpus)
        yield executor
        return
    environ = dict(os.environ)
    address = os.environ.get("RAY_ADDRESS")
    if address:
        probe_address(address)
    try:
        opts: dict[str, Any] = {"address": address} if address else {"num_cpus": os.cpu_count()}
        try:
            with nullcontext() if verbose else quiet_native_output(keep_tail_on_error=0):  # Ray's own lines
                ray.init(
                    **opts, include_dashboard=False, logging_level="INFO" if verbose else "ERROR", log_to_driver=verbose
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(f"executor ray: cannot start or reach a Ray cluster: {first}") from None
        executor = RayExecutor(ray, seed, threads)
        executor.check_resources(threads, num_gpus)
        yield executor
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.environ.clear()
        os.environ.update(environ)
