"""No network: a full build, export and parity check included, runs with networking disabled."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
import torch

from restnet_compile import api
from restnet_compile.config.build import BuildConfig


def test_build_never_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def refuse(what: str):  # type: ignore[no-untyped-def]
        def blocked(*args: object, **kwargs: object) -> None:
            attempts.append(f"{what}{args!r}")
            raise OSError(f"network disabled by test: {what}")

        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))

    config = BuildConfig.model_validate(
        {"profile": "phone", "plan": {"max_candidates": 1}, "tune": {"epochs": 1}, "selection": "feasible"}
    )
    threads = torch.get_num_threads()
    try:
        result = api.build(config, tmp_path, cache=False)  # every stage runs, export included
    finally:  # api.build leaves process-wide torch settings behind (pipeline.set_determinism)
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
        torch.use_deterministic_algorithms(False)

    assert attempts == []
    assert result.bundle_dir.is_dir()
    assert result.archive.is_file()
    assert any(v.selected for v in result.manifest.variants)
    assert sorted(result.manifest.files) == sorted(
        p.relative_to(result.bundle_dir).as_posix()
        for p in result.bundle_dir.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )

    # the guard itself works: an ordinary HTTP request is stopped and recorded
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)
    assert attempts
