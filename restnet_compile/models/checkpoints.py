"""Reading weights without running code: safetensors through the safetensors library, pickles as weights only.

* ``.safetensors``: ``safetensors.torch.load_file`` (the format holds tensors only; nothing is unpickled).
* ``.pt`` / ``.pth`` / ``.bin`` and anything else: ``torch.load(weights_only=True)``; a pickle that carries code is
  refused. A training checkpoint that wraps the state_dict (``{"state_dict": ...}``, ``{"model": ...}``...) is
  unwrapped, and the ``module.`` prefix ``nn.DataParallel`` adds is removed.
* A folder in the layout timm and the Hugging Face hub save: ``model.safetensors`` (or ``pytorch_model.bin``) beside
  ``config.json``.

A checkpoint that does not fit the architecture is refused in one line naming a few missing, unexpected and
mismatching keys; so is one that holds a NaN or an infinity, or only zeros (no trained weights).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from restnet_compile.errors import BadInputError

FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_NAMED = 3  # keys named per kind of mismatch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def weights_file(path: Path, model_name: str) -> Path:
    """The weights file of ``path``: the file itself, or a folder's ``model.safetensors`` / ``pytorch_model.bin``.

    Raises:
        BadInputError: the path does not exist, or the folder holds neither file.
    """
    if path.is_dir():
        for name in FOLDER_WEIGHTS:
            if (path / name).is_file():
                return path / name
        raise BadInputError(f"model {model_name}: folder {path} holds neither {' nor '.join(FOLDER_WEIGHTS)}")
    if not path.is_file():
        raise BadInputError(f"model {model_name}: checkpoint {path} does not exist")
    return path


def _unwrap(state: object) -> object:
    """The state_dict inside a training checkpoint, without a ``module.`` prefix on every key."""
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for key in _WRAPPER_KEYS:
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if isinstance(state, dict) and state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def read_state_dict(path: Path, model_name: str) -> dict[str, torch.Tensor]:
    """Read a state_dict from a file or a timm / Hugging Face folder, never unpickling code.

    Raises:
        BadInputError: missing file, unsafe or corrupt file, or not a mapping of names to tensors.
    """
    path = weights_file(Path(path), model_name)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns about legacy pickles before refusing them
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError; safetensors SafetensorError
        why = _first_line(exc)
        raise BadInputError(f"model {model_name}: checkpoint {path} cannot be loaded safely: {why}") from None
    state = _unwrap(state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInputError(f"model {model_name}: checkpoint {path} is not a state_dict of tensors")
    return state


def _few(keys: list[str], what: str) -> str:
    named = ", ".join(repr(k) for k in keys[:_NAMED])
    more = f" and {len(keys) - _NAMED} more" if len(keys) > _NAMED else ""
    return f"{what} {named}{more}"


def mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """How ``state`` differs from the model's ``own`` state_dict, in a few words; None when it fits."""
    missing = [k for k in own if k not in state]
    unexpected = sorted(k for k in state if k not in own)
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(_few(missing, "lacks key"))
    if shapes:
        k = shapes[0]
        more = f" (and {len(shapes) - 1} more keys of other shapes)" if len(shapes) > 1 else ""
        parts.append(f"key {k!r} has shape {tuple(state[k].shape)}, the model expects {tuple(own[k].shape)}{more}")
    if unexpected:
        parts.append(_few(unexpected, "has unexpected key"))
    return "; ".join(parts) or None


def load_checkpoint(module: nn.Module, path: Path, model_name: str) -> None:
    """Load a state_dict file (or folder) into ``module``, naming a few missing, mismatching or unexpected keys.

    Raises:
        BadInputError: the checkpoint cannot be read or does not match the architecture.
    """
    state = read_state_dict(Path(path), model_name)
    problem = mismatch(module.state_dict(), state)
    if problem:
        raise BadInputError(f"model {model_name}: checkpoint {path} does not fit {type(module).__name__}: {problem}")
    problem = garbage(state)
    if problem:
        raise BadInputError(f"model {model_name}: checkpoint {path} {problem}; it holds no trained weights")
    module.load_state_dict(state)


def garbage(state: dict[str, torch.Tensor]) -> str | None:
    """Why a state_dict cannot hold trained weights (a non-finite value, or every value zero); None when it can."""
    floats = [(k, v) for k, v in state.items() if v.is_floating_point() or v.is_complex()]
    for key, value in floats:
        if not bool(torch.isfinite(value).all()):
            bad = value[~torch.isfinite(value)].flatten()[0].item()
            return f"has a non-finite value ({bad}) in {key!r}"
    if floats and not any(bool(v.count_nonzero()) for _, v in floats):
        return f"is all zeros ({len(floats)} tensors)"
    return None
