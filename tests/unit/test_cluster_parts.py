"""The parts that let a build run on machines that share nothing but Ray, each alone.

* ``deterministic()`` pins every OpenMP and BLAS pool to the build's threads and puts each back after.
* Data and file-backed features cross a process boundary as their contents, never as a path: a copy still reads
  the same values after the original files are gone; received features spill to this process's own folder, which
  :func:`release_received` removes.
* Environments are compared leaf by leaf, naming each difference.
* An address where something accepts connections and never answers is refused within the timeout, in one line.
"""

from __future__ import annotations

import pickle
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_info

from restnet_compile._util.torch_state import POOLS, deterministic
from restnet_compile.data.folder import read_folder_lazy
from restnet_compile.data.npz import read_npz_lazy
from restnet_compile.errors import BadInputError
from restnet_compile.pipeline.executor import differences, probe_address
from restnet_compile.pipeline.jobs import Job
from restnet_compile.stitching.tuning.store import RowsWriter, received_folder, release_received


def _pools() -> dict[str, int]:
    return {d["filepath"]: d["num_threads"] for d in threadpool_info() if d["user_api"] in POOLS}


def test_deterministic_pins_every_native_pool_and_puts_it_back() -> None:
    before, torch_before = _pools(), torch.get_num_threads()
    assert before  # torch's OpenMP and numpy's BLAS are loaded
    with deterministic(0, 1):
        assert set(_pools().values()) == {1}
        assert torch.get_num_threads() == 1
    assert _pools() == before
    assert torch.get_num_threads() == torch_before


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / label / f"{k}.png")
    return root


def test_folder_images_travel_as_bytes(tmp_path: Path) -> None:
    images = read_folder_lazy(_folder(tmp_path / "digits"), (1, 8, 8)).images
    blob = pickle.dumps(images)
    shutil.rmtree(tmp_path / "digits")  # the other machine has no such folder
    copy = pickle.loads(blob)
    assert np.array_equal(copy[np.arange(6)], pickle.loads(pickle.dumps(copy))[np.arange(6)])
    with pytest.raises(BadInputError, match="vanished during the build"):
        images[np.arange(1)]  # here the folder was the source, and it is gone


def test_npz_images_travel_as_the_stored_array(tmp_path: Path) -> None:
    raw = np.random.default_rng(1).integers(0, 255, (5, 8, 8), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez_compressed(path, images=raw, labels=np.arange(5))
    images, _, _, _ = read_npz_lazy(path)
    want = images[np.arange(5)]
    blob = pickle.dumps(images)
    path.unlink()
    copy = pickle.loads(blob)
    assert copy.raw.dtype == np.uint8 and np.array_equal(copy[np.arange(5)], want)


def test_file_features_travel_as_rows_and_spill_to_this_processs_folder(tmp_path: Path) -> None:
    writer = RowsWriter("mmap", 4, tmp_path)
    writer.append(torch.arange(24, dtype=torch.float32).reshape(4, 2, 3))
    rows = writer.finish()
    blob = pickle.dumps(rows)
    shutil.rmtree(tmp_path)
    try:
        copy = pickle.loads(blob)
        assert copy.path.parent == received_folder()
        assert torch.equal(copy[0:4], torch.arange(24, dtype=torch.float32).reshape(4, 2, 3))
        folder = received_folder()
    finally:
        release_received()
    assert not folder.exists()


def test_differences_name_each_leaf() -> None:
    here = {"package": "0.1", "source": "a" * 64, "tools": {"torch": "2.13.0", "onnx": "1.19.1"}}
    there = {"package": "0.1", "source": "b" * 64, "tools": {"torch": "2.12.0", "onnx": "1.19.1"}}
    assert differences(here, there) == [
        "source aaaaaaaaaaaa here, bbbbbbbbbbbb there",
        "tools.torch 2.13.0 here, 2.12.0 there",
    ]
    assert differences(here, here) == []


@pytest.fixture()
def silent_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    thread = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        for s in held:
            s.close()
        server.close()


def test_a_silent_listener_is_refused_within_the_timeout(silent_port: int) -> None:
    with pytest.raises(BadInputError, match=r"no Ray cluster answered within 0\.5 s \(something accepts"):
        probe_address(f"127.0.0.1:{silent_port}", timeout=0.5)


def test_nothing_listening_is_refused_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BadInputError, match="no Ray cluster answers there"):
        probe_address(f"127.0.0.1:{port}", timeout=5)


class _FakeRay:
    """Records ``ray.init``'s arguments; one live node of 2 CPUs."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.up = False

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **kwargs: object) -> None:
        self.calls.append(kwargs)
        self.up = True

    def shutdown(self) -> None:
        self.up = False

    def remote(self, fn: object) -> object:
        return fn

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": 2.0}, "NodeID": "n"}]

    def wait(self, refs: list, num_returns: int, timeout: float) -> tuple[list, list]:
        return refs, []


def test_no_address_starts_a_new_local_instance_even_where_ray_start_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    from restnet_compile.pipeline import executor as ex

    fake = _FakeRay()
    monkeypatch.setattr(ex, "_import_ray", lambda: fake)
    monkeypatch.setattr(ex.RayExecutor, "sweep", lambda self: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with ex.open_executor("ray", seed=0, threads=1):
        pass
    assert fake.calls[0]["address"] == "local"  # never the cluster `ray start` recorded on this machine
    assert not fake.up


def test_ram_features_travel_as_an_array_and_arrive_writable() -> None:
    from restnet_compile.stitching.tuning.store import RamRows

    rows = RamRows(torch.arange(24, dtype=torch.float32).reshape(2, 3, 4))
    reduced = rows.__reduce__()
    assert isinstance(reduced[1][0], np.ndarray)  # no pickled tensor: the object store keeps the array as is
    got = pickle.loads(pickle.dumps(rows, protocol=5))
    assert torch.equal(got.tensor, rows.tensor) and got.shape == rows.shape
    read_only = np.arange(6, dtype=np.float32).reshape(2, 3)
    read_only.flags.writeable = False  # as an array read in place from Ray's object store
    copy = reduced[0](read_only)
    copy.tensor[0, 0] = 7.0  # the received tensor is its own memory
    assert read_only[0, 0] == 0.0


class _Submitted:
    """What ``ray.remote(fn).options(...).remote(...)`` was called with, in submission order."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.cancelled: list[object] = []

    def options(self, **_opts: object) -> _Submitted:
        return self

    def remote(self, *args: object) -> object:
        _fn, job_args = args[-1][0]
        self.labels.append(job_args[0])
        return object()


def test_a_remote_stage_is_submitted_longest_first_and_can_be_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    from restnet_compile.pipeline import executor as ex

    submitted = _Submitted()
    fake = _FakeRay()
    fake.remote = lambda fn: submitted  # type: ignore[method-assign]
    fake.put = lambda obj: obj  # type: ignore[attr-defined]
    fake.cancel = submitted.cancelled.append  # type: ignore[attr-defined]
    fake.cloudpickle = SimpleNamespace(register_pickle_by_value=lambda _module: None)  # type: ignore[attr-defined]
    executor = ex.RayExecutor(fake, seed=0, threads=1)
    jobs = [Job(print, (name,), name, cost=cost) for name, cost in (("a", 1), ("b", 5), ("c", 3), ("d", 5))]
    started = executor.start(jobs)
    assert submitted.labels == ["b", "d", "c", "a"]  # equal costs keep their order
    assert [j.label for j in started.jobs] == ["a", "b", "c", "d"]  # outcomes come back in the jobs' order
    executor.cancel(started)
    assert len(submitted.cancelled) == 4


def test_tuning_cost_counts_what_tuning_runs_and_leaves_the_random_stream() -> None:
    from restnet_compile.models import create_model
    from restnet_compile.pipeline.tune import tuning_cost
    from restnet_compile.stitching import Candidate, StitchPoint
    from restnet_compile.stitching.adapters import adapter_for

    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    fl, fs = large.feature_specs(), small.feature_specs()

    def cost(i: int, j: int) -> float:
        return tuning_cost(large, small, Candidate(StitchPoint(i, j), adapter_for(fl[i], fs[j]) or "", 0.5))

    state = torch.get_rng_state()
    early, late = cost(0, 0), cost(3, 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert early > late > 0  # a longer suffix of the small model runs on every image


def test_a_prebuilt_saved_model_is_written_in_place_of_its_conversion(tmp_path: Path) -> None:
    from restnet_compile._util.torch_digest import module_digest
    from restnet_compile.export.tflite_convert import Converted, _reuse, prebuilt, to_saved_model

    module = torch.nn.Conv2d(3, 4, 3)
    made = Converted("large", module_digest(module), (3, 8, 8), {"saved_model.pb": b"pb", "variables/v.index": b"ix"})
    with prebuilt([made]) as used:
        out = to_saved_model(module, (3, 8, 8), "large", tmp_path)
        assert used == {"large"}
        assert out == tmp_path.resolve() / "sm_large"
        assert (out / "variables" / "v.index").read_bytes() == b"ix"
        other = torch.nn.Conv2d(3, 4, 3)  # other weights: converted, not reused
        assert not _reuse(other, (3, 8, 8), "large", tmp_path / "x")
        assert not _reuse(module, (3, 16, 16), "large", tmp_path / "y")  # another input shape
        assert not _reuse(module, (3, 8, 8), "small", tmp_path / "z")
    assert not _reuse(module, (3, 8, 8), "large", tmp_path / "w")  # only inside the block


def test_tflite_exports_convert_each_variant_or_each_segment() -> None:
    from restnet_compile.config.device import load_target
    from restnet_compile.export import EXPORTERS
    from restnet_compile.models import create_model

    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    variants = {"large": large, "small": small}
    calib = np.zeros((2, *large.input_shape), dtype=np.float32)
    whole = load_target("tflite-int8")
    got = EXPORTERS.get(whole.exporter)().conversions(variants, large.input_shape, calib, whole)
    assert [(c.name, c.module, c.input_shape) for c in got] == [(n, m, large.input_shape) for n, m in variants.items()]
    seg = load_target("tflite-int8-segments")
    names = [c.name for c in EXPORTERS.get(seg.exporter)().conversions(variants, large.input_shape, calib, seg)]
    assert names and all(n.startswith("seg_") for n in names)
    assert EXPORTERS.get("onnx")().conversions(variants, large.input_shape, calib, load_target("onnx-fp32")) == []
