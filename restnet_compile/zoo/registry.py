"""Model sources registered by name: ``create_model("demo-large-cnn")`` like timm's ``create_model``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch

from restnet_compile.errors import BadInputError
from restnet_compile.registry import Registry
from restnet_compile.zoo.blocks import BlockSequence
from restnet_compile.zoo.demo import demo_large_cnn, demo_small_cnn, demo_vit

MODELS: Registry[Callable[[], BlockSequence]] = Registry("model")
MODELS.register("demo-large-cnn")(demo_large_cnn)
MODELS.register("demo-small-cnn")(demo_small_cnn)
MODELS.register("demo-vit")(demo_vit)

_SHIPPED = {"demo-large-cnn", "demo-small-cnn", "demo-vit"}


def shipped_weights(name: str) -> Path:
    """Path of the weights that ship with the package for demo model ``name``."""
    return Path(str(resources.files("restnet_compile.zoo").joinpath(f"weights/{name}.pt")))


def load_state_dict(model: BlockSequence, path: Path) -> None:
    """Load a state_dict checkpoint into ``model``, never unpickling code (``weights_only=True``).

    Raises:
        BadInputError: the file is missing, is not a plain state_dict, or does not match the architecture.
    """
    if not path.is_file():
        raise BadInputError(f"model {model.model_name}: checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"model {model.model_name}: checkpoint {path} cannot be loaded safely: {first}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInputError(f"model {model.model_name}: checkpoint {path} is not a state_dict of tensors")
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise BadInputError(f"model {model.model_name}: checkpoint {path} lacks key {key!r}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise BadInputError(
                f"model {model.model_name}: checkpoint {path} key {key!r} has shape "
                f"{tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    extra = sorted(set(state) - set(own))
    if extra:
        raise BadInputError(f"model {model.model_name}: checkpoint {path} has unexpected key {extra[0]!r}")
    model.load_state_dict(state)


def create_model(name: str, weights: Path | None = None) -> BlockSequence:
    """Build registered model ``name`` in eval mode with its weights.

    Args:
        name: A registered model name (see ``MODELS.names()``).
        weights: A state_dict file; demo models default to the weights shipped with the package.
    """
    model = MODELS.get(name)()
    if weights is None and name in _SHIPPED:
        weights = shipped_weights(name)
    if weights is not None:
        load_state_dict(model, Path(weights))
    model.requires_grad_(False)  # models are frozen donors: only adapters are ever trained
    return model.eval()
