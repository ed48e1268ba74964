"""Jobs and how they run: a build's independent jobs (each candidate's tuning, each model conversion of the exports,
each profile's export and parity), the interface every executor offers, and the in-process executor.

A job is a function at module level (a remote worker imports it by name) that takes a ``progress`` keyword; on a
worker it gets a reporter that collects log lines, which the caller replays when the job is done. The Ray executor
and the choice between executors are in :mod:`.executor`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import torch

from restnet_compile._util.progress import Reporter
from restnet_compile.errors import RestnetError

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """One job: ``fn(*args, progress=...)``, its label for progress lines and the resources it declares.

    ``cost`` is a relative estimate of its run time: a remote executor starts the jobs of one stage longest first,
    so that the last to finish is a short one (the order changes no result).
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label: str
    num_cpus: int = 1
    num_gpus: float = 0.0
    cost: float = 0.0


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


@dataclass(frozen=True)
class Started:
    """Jobs an executor was given (:meth:`Executor.start`), to be waited for once (:meth:`Executor.finish`)."""

    jobs: list[Job]
    handle: Any = None


#: Called with a job's index and outcome as each job finishes.
OnDone: TypeAlias = "Callable[[int, Done[Any]], None]"


class Executor(ABC):
    """Runs a build's jobs: :class:`LocalExecutor` or :class:`~restnet_compile.pipeline.executor.RayExecutor`.

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
    def start(self, jobs: list[Job]) -> Started:
        """``jobs`` handed to the workers now, without waiting for them (the local executor runs them when they
        are finished)."""

    @abstractmethod
    def finish(
        self, started: Started, progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        """Every outcome of the ``started`` jobs, in their order; ``done(index, outcome)`` is called as each one
        finishes."""

    def cancel(self, started: Started) -> None:  # noqa: B027 - the local executor has nothing running
        """Drop the ``started`` jobs: those not done yet are stopped, their outcomes never read."""

    def run(
        self, jobs: list[Job], progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        """Every job's outcome, in ``jobs``' order; ``done(index, outcome)`` is called as each one finishes."""
        return self.finish(self.start(jobs), progress, done)


class LocalExecutor(Executor):
    """Runs jobs in this process, one after the other (the default, and the tested path)."""

    name = "local"
    remote = False

    def share(self, obj: T) -> T:
        return obj

    def start(self, jobs: list[Job]) -> Started:
        return Started(list(jobs))

    def finish(
        self, started: Started, progress: Reporter, done: Callable[[int, Done[Any]], None] | None = None
    ) -> list[Done[Any]]:
        out = []
        for k, job in enumerate(started.jobs):
            try:
                value, error = job.fn(*job.args, progress=progress), None
            except RestnetError as exc:
                value, error = None, exc
            out.append(Done(value, error, torch.get_rng_state()))
            if done is not None:
                done(k, out[-1])
        return out
