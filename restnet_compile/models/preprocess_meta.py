"""The input a model's weights were trained on, as its own library records it (timm's ``pretrained_cfg``).

A timm model carries ``pretrained_cfg`` (from timm's registry, or from the ``config.json`` of the folder its weights
came from); a ``BlockSequence`` built from a timm model keeps it. Other models carry none: :func:`preprocess_meta`
returns None for them. Values are timm's: ``mean`` / ``std`` per channel of the pretrained weights in ``[0, 1]``
pixel units (three values even when the model was created with another ``in_chans``), ``input_size`` the size the
weights were trained at, ``crop_pct`` the share of the resized image kept by the centre crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

# timm's own defaults (timm.data.constants) for keys a cfg leaves out
_DEFAULT_INTERPOLATION = "bicubic"
_DEFAULT_CROP_PCT = 0.875


@dataclass(frozen=True)
class PreprocessMeta:
    """A model's recorded preprocessing.

    Attributes:
        input_size: ``(C, H, W)`` the weights were trained at.
        mean: Per-channel mean subtracted from pixels in ``[0, 1]``.
        std: Per-channel standard deviation divided by.
        interpolation: Resize filter (``bilinear``, ``bicubic``...).
        crop_pct: Share of the resized image the centre crop keeps.
        crop_mode: timm's crop mode (``center``, ``squash``, ``border``).
        source: Where the values come from.
    """

    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    crop_mode: str
    source: str


def preprocess_meta(model: nn.Module) -> PreprocessMeta | None:
    """The preprocessing recorded on ``model`` (a timm model or a ``BlockSequence`` made from one), else None."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping) or "mean" not in cfg or "std" not in cfg:
        return None
    crop = cfg.get("crop_pct")
    return PreprocessMeta(
        input_size=tuple(int(s) for s in cfg.get("input_size") or ()),
        mean=tuple(float(m) for m in cfg["mean"]),
        std=tuple(float(s) for s in cfg["std"]),
        interpolation=str(cfg.get("interpolation") or _DEFAULT_INTERPOLATION),
        crop_pct=float(_DEFAULT_CROP_PCT if crop is None else crop),
        crop_mode=str(cfg.get("crop_mode") or "center"),
        source="timm pretrained_cfg",
    )
