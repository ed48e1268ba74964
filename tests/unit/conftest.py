"""Unit-tier fixtures: one torch thread per test, the CLI run in process, and the fixture models' checkpoints.

The fixture models are loaded untouched from tests/fixtures/user_models. Each checkpoint holds seeded random weights
whose BatchNorm statistics are estimated on real digits (a cumulative average over 256 mnist5k images), saved the way
users have them: ``.pth`` state_dicts, a ``.safetensors`` file, and for the timm model a folder in the timm / Hugging
Face layout (``model.safetensors`` + ``config.json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from restnet_compile.cli import cli
from restnet_compile.cli.base import run_guarded
from tests.unit.fixture_models import DIGIT_STATS, SPECS, estimate_batchnorm, raw_model

CliCall = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Unit tests run tiny models, where a second intra-op thread only adds synchronisation (5x the CPU time)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fast_cpu_math() -> Iterator[None]:
    """Denormals flushed and one torch thread for a module that tunes adapters.

    Denormal gradients make tuning an order of magnitude slower (the pipeline flushes them too), and on a loaded
    2-core machine two intra-op threads fighting over one free core make tiny ops ~50x slower.
    """
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.fixture()
def cli_in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliCall:
    """Run ``restnet-compile ARGS`` the way ``main()`` does (same error lines and exit codes), in this process.

    A subprocess would pay for importing torch again; the integration tier runs the real command line.
    """

    def invoke(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["restnet-compile", *args])
        capsys.readouterr()
        code = run_guarded(cli)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return invoke


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """256 real mnist5k digits in [0, 1] and their labels."""
    from restnet_compile.data import load_dataset

    ds = load_dataset("mnist5k")
    return torch.from_numpy(ds.images[:256].copy()), torch.from_numpy(ds.labels[:256].copy())


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, digits: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Path]:
    """A checkpoint per fixture model: ``.pth`` for most, ``.safetensors`` for one, a timm folder for timm."""
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # built before the module-scoped setting applies
    for seed, key in enumerate(SPECS):
        torch.manual_seed(seed)
        model = raw_model(key)
        estimate_batchnorm(model, digits[0])
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if key == "timm":
            arch = SPECS[key].removeprefix("timm:")
            folder = root / f"{arch}-digits"
            folder.mkdir()
            save_file(state, str(folder / "model.safetensors"))
            config = {"architecture": arch, "num_classes": 10, "pretrained_cfg": {**DIGIT_STATS}}
            (folder / "config.json").write_text(json.dumps(config))
            paths[key] = folder
        elif key == "residual":
            paths[key] = root / f"{key}.safetensors"
            save_file(state, str(paths[key]))
        else:
            paths[key] = root / f"{key}.pth"
            torch.save(state, paths[key])
    torch.set_num_threads(threads)
    return paths
