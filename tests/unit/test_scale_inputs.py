"""Fleets, executors and devices: the config fields, and every bad input refused in one line before any work."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from restnet_compile import api
from restnet_compile.bundle.result import BuildResult, FleetResult, ProfileFailure
from restnet_compile.cli.build import fleet_summary
from restnet_compile.config.build import BuildConfig, load_build_config
from restnet_compile.config.device import builtin_text
from restnet_compile.errors import BadInputError, InfeasibleError, ParityError
from restnet_compile.pipeline.cache.stages import StageKey
from restnet_compile.pipeline.executor import RayExecutor, open_executor, probe_address
from restnet_compile.pipeline.jobs import Job, LocalExecutor
from tests.manifests import sample_manifest
from tests.unit.conftest import CliCall


def _one_line_exit_2(proc, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _build(cli: CliCall, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    proc = cli("build", *args, "--out", "dist", "--cache-dir", "cache", "--quiet", cwd=tmp_path)
    assert not (tmp_path / "dist").exists() and not (tmp_path / "cache").exists()  # nothing written
    return proc


def test_profiles_in_the_config_and_on_the_command_line(tmp_path: Path) -> None:
    fleet = BuildConfig(profiles=["mcu", "phone"])
    assert fleet.profile_names() == ["mcu", "phone"]
    assert fleet.for_profile("mcu") == BuildConfig(profile="mcu")
    assert "profiles" not in fleet.model_dump() and "executor" not in fleet.model_dump()
    assert fleet.for_profile("phone").config_hash() == BuildConfig().config_hash()
    assert BuildConfig(profiles=["mcu"]) == BuildConfig(profile="mcu")  # a list of one is that profile
    path = tmp_path / "fleet.yaml"
    path.write_text("profiles: [mcu, jetson]\n", encoding="utf-8")
    assert load_build_config(path).profile_names() == ["mcu", "jetson"]
    assert load_build_config(path, profiles=["phone"]).profile_names() == ["phone"]  # the command line wins
    assert load_build_config(path, profiles=["host", "phone"]).profile_names() == ["host", "phone"]


def test_profile_and_profiles_together_or_an_empty_list_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text("profile: mcu\nprofiles: [phone, jetson]\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"give `profile` \(one\) or `profiles` \(a list\), not both"):
        load_build_config(path)
    with pytest.raises(BadInputError, match="profiles: give at least one profile"):
        load_build_config(None, profiles=[])


def test_how_a_build_runs_is_never_a_stage_input() -> None:
    key = StageKey("x", 1, ("plan",))
    assert key.not_inputs == (
        "plan",
        "allow_random_weights",
        "profiles",
        "max_memory",
        "executor",
        "verbose",
        "ray_timeout",
    )
    run_only = BuildConfig(executor="ray", max_memory="1GiB", ray_timeout=5)
    assert key.config_part(run_only) == key.config_part(BuildConfig())


def test_the_same_profile_twice_is_one_line_exit_2(tmp_path: Path, cli_in_process: CliCall) -> None:
    proc = _build(cli_in_process, tmp_path, "--profile", "phone", "--profile", "mcu", "--profile", "phone")
    _one_line_exit_2(proc, "profile phone is given twice; give each profile once")
    (tmp_path / "phone.yaml").write_text(builtin_text("profiles", "phone"), encoding="utf-8")
    proc = _build(cli_in_process, tmp_path, "--profile", "phone", "--profile", "phone.yaml")
    _one_line_exit_2(proc, "profile phone is given twice (as 'phone' and 'phone.yaml')")


def test_cuda_without_a_gpu_is_one_line_exit_2(tmp_path: Path, cli_in_process: CliCall) -> None:
    proc = _build(cli_in_process, tmp_path, "--device", "cuda")
    _one_line_exit_2(proc, "device: cuda", "torch sees no CUDA GPU", "auto, cpu, cuda")


def test_ray_missing_names_the_extra(tmp_path: Path, cli_in_process: CliCall, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    proc = _build(cli_in_process, tmp_path, "--executor", "ray")
    _one_line_exit_2(proc, "ray is not installed", "pip install 'restnet-compile[ray]'")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_ray_address_is_one_line_exit_2(
    tmp_path: Path, cli_in_process: CliCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    import ray

    from restnet_compile.pipeline import executor

    before = dict(os.environ)

    waits: list[float | None] = []  # how long each connection attempt may wait (no clock in the test)
    real_connect = executor.socket.create_connection

    def connect(where: tuple[str, int], timeout: float | None = None) -> socket.socket:
        waits.append(timeout)
        return real_connect(where, timeout=timeout)

    monkeypatch.setattr(executor.socket, "create_connection", connect)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init retries for minutes; it must not run"))
    proc = _build(cli_in_process, tmp_path, "--executor", "ray")
    assert waits == [executor.TIMEOUT]  # one probe bounded by ray_timeout, then the error
    _one_line_exit_2(proc, f"RAY_ADDRESS {address}: no Ray cluster answers there")
    assert dict(os.environ) == before
    assert not ray.is_initialized()


@pytest.mark.parametrize("address", ["nonsense", "ray://", "host:port"])
def test_a_malformed_ray_address_is_refused(address: str) -> None:
    with pytest.raises(BadInputError, match="expected host:port, ray://host:port, auto or local"):
        probe_address(address)


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(BadInputError, match="valid choices: local, ray"), open_executor("dask", 0, 1):
        pass
    with pytest.raises(BadInputError, match="executor"):
        load_build_config(None, executor="dask")


def test_api_build_takes_one_profile(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"names 2 profiles \(mcu, phone\); build them as a fleet"):
        api.build(BuildConfig(profiles=["mcu", "phone"]), tmp_path / "dist", cache=False)
    assert not (tmp_path / "dist").exists()


def _add(a: int, b: int, *, progress: object) -> int:
    if a < 0:
        raise InfeasibleError("negative")
    return a + b


def test_the_local_executor_runs_jobs_in_order_and_keeps_their_errors() -> None:
    seen: list[int] = []
    jobs = [Job(_add, (1, 2), "a"), Job(_add, (-1, 0), "b"), Job(_add, (3, 4), "c")]
    done = LocalExecutor().run(jobs, lambda _m: None, lambda k, _d: seen.append(k))  # type: ignore[arg-type]
    assert seen == [0, 1, 2]
    assert done[0].get() == 3 and done[2].get() == 7
    with pytest.raises(InfeasibleError, match="negative"):
        done[1].get()


def _bundle(name: str) -> BuildResult:
    sample = sample_manifest()
    manifest = dataclasses.replace(sample, profile=dataclasses.replace(sample.profile, name=name))
    return BuildResult(Path(name), Path(f"{name}.tar.gz"), manifest)


def test_a_fleets_exit_code_is_the_worst_and_its_json_lists_every_profile() -> None:
    ok = FleetResult([_bundle("phone")], [])
    assert ok.exit_code == 0
    worst = FleetResult(
        [_bundle("phone")],
        [ProfileFailure("mcu", InfeasibleError.exit_code, "no"), ProfileFailure("host", ParityError.exit_code, "x")],
    )
    assert worst.exit_code == 4
    listed = fleet_summary(worst)
    assert [e["profile"] for e in listed] == ["phone", "mcu", "host"]
    assert listed[1] == {"profile": "mcu", "error": "no", "exit_code": 3}


def test_a_ray_cluster_without_a_node_big_enough_for_one_job_is_refused() -> None:
    nodes = [{"Alive": True, "Resources": {"CPU": 1.0}}, {"Alive": True, "Resources": {"CPU": 1.0}}]
    nodes.append({"Alive": False, "Resources": {"CPU": 8.0}})  # a dead node counts for nothing
    fake = SimpleNamespace(remote=lambda fn: fn, nodes=lambda: nodes)
    executor = RayExecutor(fake, seed=0, threads=2)
    # two CPUs in all, but a job runs on one node: threads 2 would wait forever
    with pytest.raises(BadInputError, match="needs threads = 2 CPUs on one node, but the largest of the cluster's 2 "):
        executor.check_resources(2, 0.0)
    with pytest.raises(BadInputError, match="device cuda, but no node of the Ray cluster has a GPU"):
        executor.check_resources(1, 1.0)
    executor.check_resources(1, 0.0)


def test_the_cli_exits_with_the_fleets_worst_code(
    tmp_path: Path, cli_in_process: CliCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = FleetResult([], [ProfileFailure("mcu", 3, "no variant fits profile mcu"), ProfileFailure("host", 4, "x")])
    monkeypatch.setattr(api, "build_fleet", lambda *_a, **_k: failed)
    proc = cli_in_process("build", "-p", "mcu", "-p", "host", "--quiet", cwd=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.splitlines() == ["error: profile mcu: no variant fits profile mcu", "error: profile host: x"]
    proc = cli_in_process("build", "-p", "mcu", "-p", "host", "--quiet", "--json", cwd=tmp_path)
    assert proc.returncode == 4
    assert [e["exit_code"] for e in json.loads(proc.stdout)] == [3, 4]
