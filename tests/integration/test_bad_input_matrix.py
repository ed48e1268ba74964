"""Bad-input matrix: every bad input gets one line naming the problem, a documented exit code, no files.

Each case runs the real CLI in a process of its own (the console script's ``main()``, forked from a server that has
imported torch and the pipeline once: ``tests/cli_forkserver.py``) in a fresh directory and checks the exit code,
that stderr is exactly one ``error: ...`` line naming the bad field, name or file, that the ``--out`` directory is
absent or empty afterwards and that nothing else in the directory changed. Every case fails before CKA and adapter
tuning start, so the whole table runs in well under a second per case. One case also runs as
``python -m restnet_compile build ...`` in a fresh interpreter, which must give the same outcome.

The full disk cannot be simulated across a process boundary, so that case calls :func:`restnet_compile.api.build`
in-process with directory and file creation under the output directory patched to fail with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from restnet_compile.config.names import builtin_dir as _builtin_dir
from restnet_compile.models.registry import shipped_weights
from tests.cli_forkserver import fork_servers

OUT = "dist"  # every case passes --out dist (relative to the case's directory)
MARKER = "pwned.txt"  # the malicious pickle would create this file


# --------------------------------------------------------------------------------------------- case builders


def _phone() -> dict:
    return yaml.safe_load((_builtin_dir("profiles") / "phone.yaml").read_text())


def _profile(**changes: object) -> Callable[[Path], list[str]]:
    """A copy of the phone profile with top-level ``changes`` (dotted keys reach into nested mappings)."""

    def setup(tmp: Path) -> list[str]:
        data = _phone()
        for dotted, value in changes.items():
            *parents, leaf = dotted.split(".")
            node = data
            for p in parents:
                node = node[p]
            node[leaf] = value
        (tmp / "dev.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return ["--profile", "dev.yaml"]

    return setup


def _profile_text(text: str | bytes) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        path = tmp / "dev.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["--profile", "dev.yaml"]

    return setup


def _config(data: dict | str | bytes, *extra: str) -> Callable[[Path], list[str]]:
    """A build config file (a mapping is dumped as YAML, text is written as is) plus extra CLI options."""

    def setup(tmp: Path) -> list[str]:
        raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else yaml.safe_dump(data)).encode()
        (tmp / "build.yaml").write_bytes(raw)
        return ["--profile", "phone", "--config", "build.yaml", *extra]

    return setup


def _args(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(args)


def _then(prepare: Callable[[Path], None], setup: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    def both(tmp: Path) -> list[str]:
        prepare(tmp)
        return setup(tmp)

    return both


class _Other(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)


def _other_arch(tmp: Path) -> None:
    torch.save(_Other().state_dict(), tmp / "other.pt")


def _truncated(tmp: Path) -> None:
    data = shipped_weights("demo-large-cnn").read_bytes()
    (tmp / "half.pt").write_bytes(data[: len(data) // 2])


class _Evil:
    """Unpickling this runs ``exec``, which would create the marker file in the current directory."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({MARKER!r}, 'w').write('code ran')",))


def _evil_torch(tmp: Path) -> None:
    state = _Other().state_dict()
    torch.save({**state, "payload": _Evil()}, tmp / "evil.pt")


def _evil_raw(tmp: Path) -> None:
    (tmp / "evil.pt").write_bytes(pickle.dumps({"fc.weight": _Evil()}))


def _npz(**arrays: np.ndarray) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        np.savez(tmp / "data.npz", **arrays)

    return write


def _digits(n: int = 200, shape: tuple[int, ...] = (1, 28, 28), dtype: type = np.uint8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, size=(n, *shape)).astype(dtype)


def _labels(n: int = 200, high: int = 10) -> np.ndarray:
    return np.arange(n) % high


def _truncated_npz(tmp: Path) -> None:
    np.savez(tmp / "full.npz", images=_digits(), labels=_labels())
    data = (tmp / "full.npz").read_bytes()
    (tmp / "full.npz").unlink()
    (tmp / "data.npz").write_bytes(data[: len(data) // 2])


def _nan_digits() -> np.ndarray:
    images = _digits(dtype=np.float32) / 255
    images[:, 0, 5, 5] = np.nan  # every image: the first one read names it
    return images


def _one_class_labels() -> np.ndarray:
    labels = np.zeros(200, dtype=np.int64)
    labels[np.random.default_rng(0).permutation(200)[:40]] = 1  # the test split (seed 0) is all 1, the rest all 0
    return labels


def _random_model_file(tmp: Path) -> None:
    (tmp / "mymodel.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Sequential):\n    input_shape = (1, 28, 28)\n\n"
        "    def __init__(self):\n        super().__init__(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), "
        "nn.Linear(4 * 26 * 26, 10))\n"
    )


def _bad_checkpoint(name: str, value: float) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        state = torch.load(shipped_weights("demo-large-cnn"), weights_only=True)
        torch.save({k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in state.items()}, tmp / name)

    return write


def _user_model_file(tmp: Path) -> None:
    (tmp / "mymodel.py").write_text("from torch import nn\n\n\nclass Net(nn.Module):\n    pass\n")


def _out_is_file(tmp: Path) -> None:
    (tmp / OUT).write_text("I am a file, not a directory\n")


def _read_only(tmp: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


# --------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path], list[str]]
    names: tuple[str, ...]  # substrings the one error line must contain (the bad field, name or file)
    code: int = 2
    out: str = OUT
    marks: tuple = field(default=())


BUILTIN_MODEL = ["--large", "demo-large-cnn"]
CASES = [
    # profiles
    Case("profile-malformed-yaml", _profile_text("name: [phone\nram: 256MB\n"), ("dev.yaml", "not valid YAML")),
    Case(
        "profile-not-utf8",
        _profile_text(b"name: \xff\xfe phone\n"),
        ("dev.yaml",),
    ),
    Case("profile-not-a-mapping", _profile_text("- phone\n- mcu\n"), ("dev.yaml", "mapping")),
    Case("profile-unknown-field", _profile(colour="red"), ("dev.yaml", "unknown field 'colour'")),
    Case("profile-unknown-nested-field", _profile(**{"latency_model.turbo": 2}), ("latency_model.turbo",)),
    Case("profile-missing-field", _profile_text("format_version: 1\nname: x\n"), ("dev.yaml", "missing field")),
    Case("profile-format-version-2", _profile(format_version=2), ("format_version",)),
    Case("profile-ram-zero", _profile(ram="0KB"), ("'ram'", "greater than zero")),
    Case("profile-ram-negative", _profile(ram="-256MB"), ("'ram'", "-256MB")),
    Case("profile-ram-unitless", _profile(ram=268435456), ("'ram'", "unit")),
    Case("profile-ram-wrong-unit", _profile(ram="256ms"), ("'ram'", "unknown unit 'ms'")),
    Case("profile-flash-zero", _profile(flash="0MB"), ("'flash'", "greater than zero")),
    Case("profile-flash-unknown-unit", _profile(flash="50MHz"), ("'flash'", "unknown unit 'MHz'")),
    Case("profile-latency-budget-zero", _profile(**{"latency.budget": "0ms"}), ("latency.budget",)),
    Case("profile-latency-budget-negative", _profile(**{"latency.budget": "-5ms"}), ("latency.budget", "-5ms")),
    Case("profile-latency-budget-unitless", _profile(**{"latency.budget": 5}), ("latency.budget", "unit")),
    Case("profile-latency-budget-wrong-unit", _profile(**{"latency.budget": "5MB"}), ("latency.budget", "'MB'")),
    Case("profile-runtime-ram-exceeds-ram", _profile(runtime_ram="300MB"), ("dev.yaml", "runtime_ram")),
    Case("profile-arena-exceeds-ram", _profile(arena="1GB"), ("dev.yaml", "arena")),
    # selection rule and GPU occupancy: 0% is a valid gain (the plain Pareto front), the rest is not
    Case(
        "profile-gain-negative",
        _profile(**{"selection.min_latency_gain": "-5%"}),
        ("selection.min_latency_gain", "-5%"),
    ),
    Case(
        "profile-gain-100", _profile(**{"selection.min_latency_gain": "100%"}), ("selection.min_latency_gain", "100%")
    ),
    Case(
        "profile-gain-unitless",
        _profile(**{"selection.min_latency_gain": 0.1}),
        ("selection.min_latency_gain", "'10%'"),
    ),
    Case(
        "profile-gain-wrong-unit",
        _profile(**{"selection.min_latency_gain": "10ms"}),
        ("selection.min_latency_gain", "10ms"),
    ),
    Case("profile-selection-unknown-field", _profile(**{"selection.min_step": "1ms"}), ("selection.min_step",)),
    Case("profile-parallel-outputs-zero", _profile(**{"latency_model.parallel_outputs": 0}), ("parallel_outputs", "0")),
    Case(
        "profile-parallel-outputs-negative", _profile(**{"latency_model.parallel_outputs": -8}), ("parallel_outputs",)
    ),
    Case(
        "profile-parallel-outputs-unit", _profile(**{"latency_model.parallel_outputs": "128K"}), ("parallel_outputs",)
    ),
    Case("profile-file-missing", _args("--profile", "./nope.yaml"), ("nope.yaml", "does not exist")),
    Case("profile-unknown-name", _args("--profile", "phon"), ("unknown profile 'phon'", "phone")),
    # targets
    Case("target-unknown-name", _args("--profile", "phone", "--target", "tflite-int4"), ("'tflite-int4'",)),
    Case("target-dtype-not-run-by-profile", _args("--profile", "mcu", "--target", "onnx-fp32"), ("onnx-fp32", "mcu")),
    Case(
        "target-unknown-field",
        _then(
            lambda tmp: (tmp / "t.yaml").write_text(
                (_builtin_dir("targets") / "onnx-fp32.yaml").read_text() + "speed: fast\n"
            ),
            _args("--profile", "phone", "--target", "t.yaml"),
        ),
        ("t.yaml", "unknown field 'speed'"),
    ),
    # build config
    Case("config-missing-file", _args("--profile", "phone", "--config", "nope.yaml"), ("nope.yaml", "does not exist")),
    Case(
        "config-not-utf8",
        _config(b"seed: 1\n# caf\xe9 (latin-1)\n"),
        ("build.yaml",),
    ),
    Case("config-malformed-yaml", _config("tune: {epochs: 1\n"), ("build.yaml", "not valid YAML")),
    Case("config-unknown-field", _config({"colour": "red"}), ("unknown field 'colour'",)),
    Case("config-unknown-nested-field", _config({"tune": {"epochz": 3}}), ("tune.epochz",)),
    Case("config-negative-epochs", _config({"tune": {"epochs": -1}}), ("tune.epochs",)),
    Case("config-bad-selection", _config({"selection": "best"}), ("selection",)),
    Case("seed-negative", _args("--profile", "phone", "--seed", "-1"), ("seed",)),
    # models and checkpoints
    Case("large-unknown-name", _args("--profile", "phone", "--large", "resnet1000"), ("'resnet1000'", "resnet18")),
    Case("small-unknown-name", _args("--profile", "phone", "--small", "tiny"), ("'tiny'", "demo-small-cnn")),
    Case("user-model-file-missing", _args("--profile", "phone", "--large", "path/nope.py:Net"), ("path/nope.py",)),
    Case(
        "user-model-class-missing",
        _then(_user_model_file, _args("--profile", "phone", "--large", "mymodel.py:Nope")),
        ("mymodel.py", "'Nope'"),
    ),
    Case(
        "user-model-syntax-error",
        _then(
            lambda tmp: (tmp / "broken.py").write_text("class Net(:\n"),
            _args("--profile", "phone", "--large", "broken.py:Net"),
        ),
        ("broken.py", "SyntaxError"),
    ),
    Case(
        "model-without-weights",
        _then(_random_model_file, _args("--profile", "phone", "--large", "mymodel.py:Net")),
        ("mymodel.py:Net (large)", "random weights", "allow_random_weights: true"),
    ),
    Case(
        "checkpoint-all-zero",
        _then(_bad_checkpoint("zero.pt", 0.0), _config({"large_weights": "zero.pt"})),
        ("zero.pt", "is all zeros"),
    ),
    Case(
        "checkpoint-non-finite",
        _then(
            _bad_checkpoint("inf.pt", float("inf")), _config({"large_weights": "inf.pt", "allow_random_weights": True})
        ),
        ("inf.pt", "non-finite value (inf)"),
    ),
    Case("checkpoint-missing", _config({"large_weights": "nope.pt"}), ("nope.pt", "does not exist")),
    Case("checkpoint-other-architecture", _then(_other_arch, _config({"large_weights": "other.pt"})), ("other.pt",)),
    Case("checkpoint-truncated", _then(_truncated, _config({"large_weights": "half.pt"})), ("half.pt",)),
    Case("checkpoint-pickle-runs-code", _then(_evil_torch, _config({"large_weights": "evil.pt"})), ("evil.pt",)),
    Case(
        "checkpoint-raw-pickle-runs-code",
        _then(_evil_raw, _config({"small_weights": "evil.pt"})),
        ("evil.pt",),
    ),
    # data
    Case("dataset-unknown-name", _config({"dataset": "mnist6k"}), ("'mnist6k'", "mnist5k")),
    Case("dataset-folder-missing", _config({"dataset": "folder:imgs"}), ("imgs", "does not exist")),
    Case("dataset-npz-missing", _config({"dataset": "nope.npz"}), ("nope.npz", "does not exist")),
    Case(
        "dataset-npz-not-an-npz",
        _then(lambda tmp: (tmp / "data.npz").write_bytes(b"PK\x03\x04 not really"), _config({"dataset": "data.npz"})),
        ("data.npz",),
    ),
    Case(
        "dataset-npz-truncated",
        _then(_truncated_npz, _config({"dataset": "data.npz"})),
        ("data.npz",),
    ),
    Case(
        "dataset-npz-object-array",
        _then(
            _npz(images=np.array([[1, 2], "x"], dtype=object), labels=_labels(2)),
            _config({"dataset": "data.npz"}),
        ),
        ("data.npz",),
    ),
    Case(
        "dataset-wrong-image-size",
        _then(_npz(images=_digits(shape=(1, 32, 32)), labels=_labels()), _config({"dataset": "data.npz"})),
        ("data.npz", "32x32"),
    ),
    Case(
        "dataset-wrong-channels",
        _then(_npz(images=_digits(shape=(3, 28, 28)), labels=_labels()), _config({"dataset": "data.npz"})),
        ("data.npz", "3x28x28"),
    ),
    Case(
        "dataset-wrong-rank",
        _then(_npz(images=_digits(shape=(784,)), labels=_labels()), _config({"dataset": "data.npz"})),
        ("data.npz", "N x C x H x W"),
    ),
    # pixels are checked as they are read (CKA reads first): --quiet keeps the progress lines out of stderr
    Case(
        "dataset-float-out-of-range",
        _then(_npz(images=_digits(dtype=np.float32), labels=_labels()), _config({"dataset": "data.npz"}, "--quiet")),
        ("data.npz", "outside [0, 1] of float images"),
    ),
    Case(
        "dataset-nan-pixel",
        _then(_npz(images=_nan_digits(), labels=_labels()), _config({"dataset": "data.npz"}, "--quiet")),
        ("data.npz: image", "has a non-finite pixel (nan)", "bad_images: skip"),
    ),
    Case(
        "dataset-one-class-split",
        _then(_npz(images=_digits(), labels=_one_class_labels()), _config({"dataset": "data.npz"})),
        ("data.npz", "the train split has only class 0 (120 images); every split needs at least 2 classes"),
    ),
    Case(
        "dataset-missing-labels",
        _then(_npz(images=_digits()), _config({"dataset": "data.npz"})),
        ("data.npz", "'labels'"),
    ),
    Case(
        "dataset-label-out-of-range",
        _then(_npz(images=_digits(), labels=_labels(high=12)), _config({"dataset": "data.npz"})),
        ("data.npz", "label 10 at index 10 is outside [0, 10), the classes of model demo-large-cnn"),
    ),
    Case(
        "dataset-negative-label",
        _then(_npz(images=_digits(), labels=_labels() - 1), _config({"dataset": "data.npz"})),
        ("data.npz", "label -1 at index 0 is outside [0, 9)"),
    ),
    Case(
        "dataset-labels-count-mismatch",
        _then(_npz(images=_digits(), labels=_labels(150)), _config({"dataset": "data.npz"})),
        ("data.npz", "labels"),
    ),
    Case(
        "dataset-empty",
        _then(_npz(images=_digits(0), labels=_labels(0)), _config({"dataset": "data.npz"})),
        ("data.npz", "0 samples"),
    ),
    # output location
    Case("out-is-a-file", _then(_out_is_file, _args("--profile", "phone")), (OUT, "not a directory")),
    Case(
        "out-read-only-dir",
        _then(_read_only, _args("--profile", "phone")),
        ("ro", "not writable"),
        out="ro/dist",
        marks=(pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only directory"),),
    ),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess[str]
    before: dict[str, tuple[int, int]]
    after: dict[str, tuple[int, int]]
    marker: bool  # the pickle payload's marker file exists
    out_entries: list[str]  # what the --out directory holds (empty when it is absent)


ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
#: The case that also runs in a fresh interpreter: its checks import torch and load a model, as most cases' do.
FRESH = "checkpoint-truncated"


def _interpreter(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m restnet_compile ARGS`` in a fresh interpreter."""
    cmd = [sys.executable, "-m", "restnet_compile", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=180)


def _run_case(case: Case, tmp: Path, run: Callable[[list[str], Path], subprocess.CompletedProcess[str]]) -> Outcome:
    args = case.setup(tmp)
    if "--out" not in args:
        args += ["--out", case.out]
    before = _snapshot(tmp)
    proc = run(["build", *args], tmp)
    out = tmp / case.out
    entries = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.is_dir() else []
    return Outcome(proc, before, _snapshot(tmp), (tmp / MARKER).exists(), entries)


def _skipped(item: pytest.Item) -> bool:
    return any(m.args and m.args[0] is True for m in item.iter_markers("skipif"))


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every selected case's CLI process up front, two at a time (one per fork server)."""
    wanted = {
        item.callspec.params["case"].id
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_bad_input" and not _skipped(item)
    }
    cases = [c for c in CASES if c.id in wanted]
    with fork_servers(2, ENV) as servers, ThreadPoolExecutor(max_workers=len(servers)) as pool:

        def share(k: int) -> dict[str, Outcome]:
            mine = cases[k :: len(servers)]
            return {c.id: _run_case(c, tmp_path_factory.mktemp(c.id), servers[k].run) for c in mine}

        done: dict[str, Outcome] = {}
        for part in pool.map(share, range(len(servers))):
            done.update(part)
    return {c.id: done[c.id] for c in cases}


def test_a_fresh_interpreter_gives_the_fork_servers_outcome(
    outcomes: dict[str, Outcome], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The fork server changes how long a case takes, not what it gives."""
    if FRESH not in outcomes:
        pytest.skip(f"{FRESH} is not selected")
    case = next(c for c in CASES if c.id == FRESH)
    fresh, forked = _run_case(case, tmp_path_factory.mktemp("fresh"), _interpreter), outcomes[FRESH]
    assert (fresh.proc.returncode, fresh.proc.stderr) == (forked.proc.returncode, forked.proc.stderr)
    assert fresh.proc.stdout == forked.proc.stdout
    assert (fresh.out_entries, fresh.after == fresh.before) == (forked.out_entries, forked.after == forked.before)


def test_matrix_has_at_least_25_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    o = outcomes[case.id]
    lines = o.proc.stderr.strip().splitlines()

    assert not o.marker, "unpickling the checkpoint ran its payload"
    assert o.proc.returncode == case.code, o.proc.stderr
    assert len(lines) == 1, o.proc.stderr
    assert lines[0].startswith("error: "), o.proc.stderr
    for name in case.names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    assert o.out_entries == [], f"{case.out} was written: {o.out_entries}"
    assert o.after == o.before, "the failed build changed files"


def test_code_payload_is_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The malicious checkpoints run code when unpickled without weights_only, so the matrix proves a refusal."""
    monkeypatch.chdir(tmp_path)
    _evil_raw(tmp_path)
    pickle.loads((tmp_path / "evil.pt").read_bytes())  # the point: this runs the payload
    assert (tmp_path / MARKER).read_text() == "code ran"
    (tmp_path / MARKER).unlink()
    _evil_torch(tmp_path)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / MARKER).read_text() == "code ran"


# --------------------------------------------------------------------------------------------- full disk


def _restore_torch(threads: int) -> None:
    """Undo the process-wide settings api.build leaves behind (pipeline.set_determinism)."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)
    torch.use_deterministic_algorithms(False)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating anything under the output directory fails with ENOSPC: one-line error, nothing left behind."""
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig
    from restnet_compile.errors import RestnetError

    # a small data set and no tuning keep the stages before publishing to a few seconds
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.integers(0, 255, (300, 28, 28), dtype=np.uint8), labels=_labels(300))
    out = tmp_path / "dist"
    out.mkdir()
    config = BuildConfig.model_validate(
        {
            "profile": "phone",
            "target": "onnx-fp32",
            "dataset": str(tmp_path / "data.npz"),
            "plan": {"max_candidates": 1},
            "tune": {"epochs": 0},
            "selection": "feasible",
        }
    )

    def full(path: object) -> bool:
        p = Path(os.fsdecode(path)).absolute()  # type: ignore[arg-type]
        return (p == out or out in p.parents) and not p.exists()

    def enospc(path: object) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))  # type: ignore[arg-type]

    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if full(path):
            raise enospc(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and full(path):
            raise enospc(path)
        return real_open(path, flags, *args, **kwargs)

    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    try:
        with pytest.raises(Exception) as info:  # the type is asserted below
            api.build(config, out)
    finally:
        monkeypatch.undo()
        _restore_torch(threads)

    assert list(out.iterdir()) == []
    assert isinstance(info.value, RestnetError), f"{type(info.value).__name__}: {info.value}"
    assert "\n" not in str(info.value)
    assert "no space" in str(info.value).lower()
