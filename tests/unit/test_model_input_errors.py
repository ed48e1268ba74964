"""A model that cannot take the build's input is one line that says why and what to give, not PyTorch's text:
a grey model paired with an RGB one, and an input smaller than a model's downsampling allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from restnet_compile.config.build import BuildConfig
from restnet_compile.errors import BadInputError
from restnet_compile.pipeline.load import load_models

NETS = """
from torch import nn


class GreyNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.head(self.b(self.a(x)))


class RgbNet(GreyNet):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(num_classes)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())


class PoolNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.c = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.d = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.head(self.d(self.c(self.b(self.a(x)))))
"""


def _message(tmp_path: Path, large: str, small: str, shape: tuple[int, int, int]) -> str:
    (tmp_path / "nets.py").write_text(NETS)
    spec = {"large": f"{tmp_path}/nets.py:{large}", "small": f"{tmp_path}/nets.py:{small}"}
    config = BuildConfig.model_validate({**spec, "input_shape": shape, "num_classes": 10, "allow_random_weights": True})
    with pytest.raises(BadInputError) as info:
        load_models(config)
    msg = str(info.value)
    assert "\n" not in msg and "Given groups" not in msg and "Output size is too small" not in msg, msg
    return msg


def test_a_grey_model_beside_rgb_input_says_what_to_pair(tmp_path: Path) -> None:
    msg = _message(tmp_path, "RgbNet", "GreyNet", (3, 16, 16))
    assert msg.endswith(
        "nets.py:GreyNet: takes grey (1-channel) images but the build's input is 3x16x16 (RGB); both models of a pair "
        "read the same input: pair it with a grey model, or give --input-shape 1,16,16 where the other model takes "
        "that too"
    )


def test_an_rgb_model_beside_grey_input_says_so_too(tmp_path: Path) -> None:
    msg = _message(tmp_path, "GreyNet", "RgbNet", (1, 16, 16))
    assert "RgbNet: takes RGB (3-channel) images but the build's input is 1x16x16 (grey)" in msg


def test_an_input_smaller_than_the_downsampling_suggests_a_size_that_works(tmp_path: Path) -> None:
    msg = _message(tmp_path, "PoolNet", "PoolNet", (3, 8, 8))
    assert msg.endswith(
        "nets.py:PoolNet: input 3x8x8 is smaller than its downsampling allows (a layer gets a map too small for its "
        "kernel); give a larger --input-shape, e.g. 3,32,32"
    )
