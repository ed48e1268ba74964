"""The build's numeric settings hold inside ``deterministic`` and are restored after it, cheaply."""

from __future__ import annotations

import subprocess
import sys

import torch

from restnet_compile._util.torch_state import deterministic


def test_deterministic_sets_and_restores_the_flags_threads_and_random_stream() -> None:
    threads = torch.get_num_threads()
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    state = torch.get_rng_state()
    with deterministic(seed=3, threads=1):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.get_num_threads() == 1
        inside = torch.rand(3)
    with deterministic(seed=3, threads=1):
        assert torch.equal(torch.rand(3), inside)
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == was
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)


def test_deterministic_restores_a_callers_strict_setting() -> None:
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with deterministic(seed=0, threads=1):
            assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])  # this process's setting as it was


def test_deterministic_does_not_import_inductor() -> None:
    """torch's public setter imports torch._inductor (seconds); a refused build should not pay for it."""
    code = (
        "import sys\n"
        "from restnet_compile._util.torch_state import deterministic\n"
        "import torch\n"
        "with deterministic(seed=0, threads=1):\n"
        "    assert torch.are_deterministic_algorithms_enabled()\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "print('torch._inductor' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
