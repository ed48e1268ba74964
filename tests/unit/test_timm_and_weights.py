"""timm models by name, offline, with local weights; safetensors read without pickle; timm's preprocessing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from restnet_compile.models import create_model
from restnet_compile.models.checkpoints import read_state_dict
from restnet_compile.models.preprocess_meta import PreprocessMeta, preprocess_meta
from restnet_compile.models.timm_source import hub_offline
from tests.unit.fixture_models import MNIST, SPECS, raw_model


def _block_sockets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args))
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_timm_model_from_a_local_folder_without_network(
    monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path]
) -> None:
    attempts = _block_sockets(monkeypatch)
    before = os.environ.get("HF_HUB_OFFLINE")
    model = create_model(SPECS["timm"], weights=checkpoints["timm"], input_shape=MNIST)  # classes: config.json
    assert attempts == [] and os.environ.get("HF_HUB_OFFLINE") == before
    assert model.num_classes() == 10
    saved = read_state_dict(checkpoints["timm"], "timm")
    first = model.blocks[0].graph_module.get_submodule("conv1.0")
    assert torch.equal(first.weight, saved["conv1.0.weight"])
    meta = preprocess_meta(model)
    assert meta is not None and meta.mean == (0.1307,) and meta.std == (0.3081,)  # the folder's config.json wins


def test_timm_pretrained_cfg_is_readable_from_the_model() -> None:
    model = create_model("timm:resnet10t", input_shape=(3, 64, 64), num_classes=10)
    assert preprocess_meta(model) == PreprocessMeta(
        input_size=(3, 176, 176),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        interpolation="bicubic",
        crop_pct=0.875,
        crop_mode="center",
        source="timm pretrained_cfg",
    )
    assert preprocess_meta(create_model(SPECS["digit_cnn"], input_shape=MNIST)) is None


def test_hub_offline_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    with hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"


def test_safetensors_are_read_without_pickle(monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path]) -> None:
    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load used for a safetensors file")

    monkeypatch.setattr(torch, "load", no_pickle)
    assert checkpoints["residual"].suffix == ".safetensors"
    model = create_model(SPECS["residual"], weights=checkpoints["residual"], input_shape=MNIST)
    assert model.num_classes() == 10


def test_training_checkpoints_are_unwrapped(tmp_path: Path) -> None:
    state = raw_model("digit_cnn").state_dict()
    wrapped = tmp_path / "epoch9.pth"
    torch.save({"epoch": 9, "state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    loaded = read_state_dict(wrapped, "cnn")
    assert sorted(loaded) == sorted(state) and all(torch.equal(loaded[k], state[k]) for k in state)


def test_timm_folder_with_pytorch_model_bin(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    state = read_state_dict(checkpoints["timm"], "timm")
    torch.save(state, tmp_path / "pytorch_model.bin")
    model = create_model(SPECS["timm"], weights=tmp_path, input_shape=MNIST, num_classes=10)
    assert torch.equal(model.head.graph_module.get_submodule("fc").weight, state["fc.weight"])
