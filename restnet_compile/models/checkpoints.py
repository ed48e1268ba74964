"""Reading weights without running code: safetensors through the safetensors library, pickles as weights only.

* ``.safetensors``: ``safetensors.torch.load_file`` (the format holds tensors only; nothing is unpickled).
* ``.pt`` / ``.pth`` / ``.bin`` and anything else: ``torch.load(weights_only=True)``; a pickle that carries code is
  refused. A training checkpoint that wraps the state_dict (``{"state_dict": ...}``, ``{"model": ...}``...) is
  unwrapped, and the ``module.`` prefix ``nn.DataParallel`` adds is removed.
* A folder in the layout timm and the Hugging Face hub save: ``model.safetensors`` (or ``pytorch_model.bin``) beside
  ``config.json``.

A checkpoint that does not fit the architecture is refused in one line naming a few missing, unexpected and
mismatching keys; so is one that holds a NaN or an infinity, or only zeros (no trained weights).

A module's ``state_dict()`` carries more than tensors: ``_metadata``, the per-submodule ``version`` that
``_load_from_state_dict`` reads (torchvision's MNASNet refuses a state_dict without it; BatchNorm reads it too).
Pickles keep it; safetensors holds tensors only, so :func:`save_checkpoint` writes it as JSON in the header's
metadata (key :data:`METADATA_KEY`) and :func:`load_checkpoint` reads it back. A checkpoint that carries none (a
safetensors file written elsewhere, a wrapped or renamed state_dict) gets the module's own: its keys and shapes
were just checked to be the module's, so they are in the format the module's code writes today.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from restnet_compile.errors import BadInputError

FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_NAMED = 3  # keys named per kind of mismatch
METADATA_KEY = "torch_state_dict_metadata"  # safetensors header key holding the state_dict's ``_metadata`` (JSON)


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
        meta = getattr(state, "_metadata", None)
        state = {k[len("module.") :]: v for k, v in state.items()}
        if meta is not None:
            inner = {k.partition(".")[2]: v for k, v in meta.items() if k == "module" or k.startswith("module.")}
            state = _with_metadata(state, inner)
    return state


def _with_metadata(state: dict[str, torch.Tensor], meta: dict | None) -> dict[str, torch.Tensor]:
    """``state`` as an ``OrderedDict`` carrying ``meta`` as ``_metadata`` (as ``nn.Module.state_dict`` returns)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict(state)
    if meta is not None:
        out._metadata = OrderedDict(meta)  # type: ignore[attr-defined]
    return out


def _safetensors_metadata(path: Path) -> dict | None:
    """The ``_metadata`` :func:`save_checkpoint` stored in a safetensors header, else None."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(METADATA_KEY)
    if text is None:
        return None
    meta = json.loads(text)
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise ValueError(f"header metadata {METADATA_KEY!r} is not a mapping of module names to settings")
    return meta


def read_state_dict(path: Path, model_name: str) -> dict[str, torch.Tensor]:
    """Read a state_dict from a file or a timm / Hugging Face folder, never unpickling code.

    Raises:
        BadInputError: missing file, unsafe or corrupt file, or not a mapping of names to tensors.
    """
    path = weights_file(Path(path), model_name)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = _with_metadata(load_file(str(path), device="cpu"), _safetensors_metadata(path))
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
    own = module.state_dict()
    problem = mismatch(own, state)
    if problem:
        raise BadInputError(f"model {model_name}: checkpoint {path} does not fit {type(module).__name__}: {problem}")
    problem = garbage(state)
    if problem:
        raise BadInputError(f"model {model_name}: checkpoint {path} {problem}; it holds no trained weights")
    if getattr(state, "_metadata", None) is None:
        state = _with_metadata(state, getattr(own, "_metadata", None))
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


def save_checkpoint(module: nn.Module, path: Path) -> None:
    """Write ``module``'s state_dict to a ``.safetensors`` file, its ``_metadata`` in the header (see above).

    Tensors that share memory (tied weights) are stored as separate copies.
    """
    from safetensors.torch import save_file

    state = module.state_dict()
    meta = {k: dict(v) for k, v in getattr(state, "_metadata", {}).items()}
    tensors = {k: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
