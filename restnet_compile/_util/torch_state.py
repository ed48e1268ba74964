"""Process-wide numeric settings a build needs, set for the duration of a ``with`` block and then restored."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import torch
from torch import nn

#: The native thread pools whose size changes floating-point results (the order of partial sums): OpenMP (torch's
#: own and any other loaded runtime) and the BLAS libraries (numpy's OpenBLAS, MKL), as threadpoolctl names them.
POOLS = ("openmp", "blas")


@contextmanager
def _native_pools(threads: int) -> Iterator[None]:
    """Every loaded OpenMP and BLAS pool limited to ``threads`` threads; each pool's size restored on exit.

    A Ray worker starts with ``OMP_NUM_THREADS`` set to its task's CPUs, a local build with the machine's: pinning
    the pools here, rather than trusting the environment, gives every process the same sums.
    """
    from threadpoolctl import threadpool_limits

    with ExitStack() as stack:
        for api in POOLS:
            stack.enter_context(threadpool_limits(limits=threads, user_api=api))
        yield


def _deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without importing ``torch._inductor`` for it.

    The public call imports inductor's config (1.5 s, most of what a refused build spends) only to copy the flag
    there, for ``torch.compile``, which a build never runs. While inductor is not loaded, the flag is set in torch's
    core alone; once it is, the public call sets both.
    """
    core = getattr(torch._C, "_set_deterministic_algorithms", None)
    if core is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        core(mode, warn_only=warn_only)


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, fix its intra-op thread count and the OpenMP / BLAS pools, flush denormals and ask for
    deterministic algorithms; restore all of it on exit.

    Tiny gradients made tuning 20x slower without denormal flushing. torch has no getter for the denormal flag, so
    it is restored to torch's default (off). torch's inter-op pool is left alone: it runs independent ops side by
    side and never splits one op's sums (and it can be sized only once per process, so it could not be restored).
    The global RNG state is restored too, so a library call leaves the caller's random stream where it was.
    """
    np.finfo(np.float64), np.finfo(np.float32)  # cache before denormals are flushed (else numpy warns later)
    rng = torch.get_rng_state()
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with _native_pools(threads):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        _deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            _deterministic_algorithms(old_det, warn_only=old_warn)
            torch.set_flush_denormal(False)
            torch.set_num_threads(old_threads)
            torch.set_rng_state(rng)


@contextmanager
def on_device(modules: Iterable[nn.Module], device: str | torch.device) -> Iterator[None]:
    """Move ``modules`` (kept on the CPU) to ``device`` for the block and back after; on the CPU, touch nothing."""
    if torch.device(device).type == "cpu":
        yield
        return
    moved = list(modules)
    for m in moved:
        m.to(device)
    try:
        yield
    finally:
        for m in moved:
            m.to("cpu")
