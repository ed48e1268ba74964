"""The fixture models of tests/fixtures/user_models by key, and how their checkpoints are made."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "user_models"
MNIST = (1, 28, 28)
SPECS = {
    "sequential": f"{FIXTURES}/sequential_net.py:SequentialNet",
    "digit_cnn": f"{FIXTURES}/digit_cnn.py:CNN",
    "residual": f"{FIXTURES}/residual_cnn.py:ResNetMini",
    "dict_output": f"{FIXTURES}/multi_output.py:EmbeddingNet",
    "tuple_output": f"{FIXTURES}/multi_output.py:AuxNet",
    "timm": "timm:test_resnet",
}
DIGIT_STATS = {"mean": [0.1307], "std": [0.3081]}
#: Checkpoints of the fixture models trained on normalised digits (``scripts/train_fixture_models.py``), shipped.
TRAINED = FIXTURES / "trained"
_TRAINED_FILES = {"residual": "residual.safetensors", "timm": "test_resnet"}


def trained_path(key: str) -> Path:
    """Where fixture ``key``'s trained checkpoint is: a ``.pth`` file, a ``.safetensors`` file or a timm folder."""
    return TRAINED / _TRAINED_FILES.get(key, f"{key}.pth")


def estimate_batchnorm(model: nn.Module, images: torch.Tensor) -> None:
    """Replace every BatchNorm's running statistics by their average over ``images``, then set eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for k in range(0, len(images), 128):
            model(images[k : k + 128])
    for m in norms:
        m.momentum = 0.1
    model.eval()


def raw_model(key: str) -> nn.Module:
    """The fixture model ``key`` as its own code builds it (random weights), unsplit."""
    from restnet_compile.models.sources import ModelOptions, user_model
    from restnet_compile.models.timm_source import create_timm

    if key == "timm":
        return create_timm(SPECS[key], None, MNIST, 10)[0]
    return user_model(SPECS[key], ModelOptions())
