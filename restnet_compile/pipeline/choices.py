"""Names in the build config that must be registered by a higher layer (adapters, tuning recipes).

The config schema sits below the stitching code, so it checks types and ranges only; these names are checked here,
first thing in every build and ``analyze``, before anything is computed or written.
"""

from __future__ import annotations

import torch

from restnet_compile.config.build import BuildConfig
from restnet_compile.errors import BadInputError
from restnet_compile.stitching.adapters import ADAPTERS
from restnet_compile.stitching.tuning.recipes import RECIPES


def registered_choices() -> dict[str, list[str]]:
    """The names that ``tune.adapter`` (``auto`` or a registered adapter) and ``tune.recipe`` accept."""
    return {"adapter": ["auto", *ADAPTERS.names()], "recipe": RECIPES.names()}


def check_choices(config: BuildConfig) -> None:
    """Refuse an unregistered ``tune.adapter`` or ``tune.recipe``.

    Raises:
        BadInputError: names the field and lists the valid choices.
    """
    for field, valid in registered_choices().items():
        name = getattr(config.tune, field)
        if name not in valid:
            raise BadInputError(
                f"build config: tune.{field}: unknown {field} {name!r}; valid choices: {', '.join(valid)}"
            )


def resolve_device(requested: str) -> str:
    """``cpu`` or ``cuda``: ``auto`` is ``cuda`` where torch sees a GPU, else ``cpu``.

    Raises:
        BadInputError: ``cuda`` where torch sees no GPU.
    """
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BadInputError(
            "build config: device: cuda, but torch sees no CUDA GPU here; valid choices: auto, cpu, cuda (auto or "
            "cpu run on this machine)"
        )
    return requested
