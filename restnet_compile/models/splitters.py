"""Split functions: turn a model of a known family into a :class:`BlockSequence`.

Each family registers one split function with a predicate that recognises its models (``SPLITTERS``). Adding a family
is one registration, not a new branch in an if/elif chain. :func:`split_model` tries the registered functions in
priority order, keeps the first whose blocks reproduce the model, and falls back to the generic traced split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from restnet_compile._util.registry import Registry
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.exact import TOLERANCE, largest_difference, probe_input
from restnet_compile.models.fx_graph import logits_key, pick
from restnet_compile.models.fx_split import DEFAULT_MAX_BLOCKS, UntraceableError, fx_split

Parts = tuple[list[nn.Module], list[str], nn.Module]


@dataclass(frozen=True)
class Splitter:
    """How to split one model family.

    Attributes:
        matches: True for the models this function can split.
        split: Returns the blocks, their names in the original model and the head.
        priority: Lower runs first (specific families before generic fallbacks).
    """

    matches: Callable[[nn.Module], bool]
    split: Callable[[nn.Module], Parts]
    priority: int = 50


SPLITTERS: Registry[Splitter] = Registry("split function")


def register_splitter(name: str, matches: Callable[[nn.Module], bool], priority: int = 50) -> Callable:
    """Decorator: register ``split(module) -> (blocks, names, head)`` for the models ``matches`` accepts."""

    def deco(split: Callable[[nn.Module], Parts]) -> Callable[[nn.Module], Parts]:
        SPLITTERS.register(name)(Splitter(matches, split, priority))
        return split

    return deco


def _reproduces(module: nn.Module, seq: BlockSequence, input_shape: tuple[int, int, int]) -> bool:
    """True when ``seq`` computes ``module``'s logits, or when ``module`` cannot run on the input at all.

    A model that fails on its input is left to :meth:`BlockSequence.feature_specs`, which names the failing block.
    """
    module.eval()
    seq.eval()
    try:
        with torch.no_grad():
            key = logits_key(module(probe_input(input_shape, 2)), 2, None)
    except Exception:
        return True
    try:
        return largest_difference(lambda x: pick(module(x), key), seq, input_shape) <= TOLERANCE
    except Exception:
        return False


def split_model(
    module: nn.Module,
    name: str,
    input_shape: tuple[int, int, int],
    split: Sequence[str] | None = None,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    num_classes: int | None = None,
) -> BlockSequence:
    """Split ``module`` with the first registered split function whose blocks reproduce it, else by tracing.

    Registered family splitters keep priority; a split that does not reproduce the model is passed over. The generic
    split (:func:`restnet_compile.models.fx_split.fx_split`) is the fallback, and the only split when ``split``
    names cut points.

    Args:
        module: The model.
        name: Its name, for messages.
        input_shape: ``(C, H, W)`` of one image.
        split: Module or graph node names to cut after (generic split only).
        max_blocks: Most blocks of the generic split.
        num_classes: Classes the logits must have (generic split; None: any).

    Raises:
        BadInputError: the model cannot be split; the message names the registered functions and why tracing failed.
    """
    if isinstance(module, BlockSequence):
        if split:
            raise BadInputError(f"model {name}: is already split into blocks; `split:` applies to traced models")
        module.model_name = name
        return module
    if not split:
        for family in sorted(SPLITTERS.names(), key=lambda n: (SPLITTERS.get(n).priority, n)):
            splitter = SPLITTERS.get(family)
            if splitter.matches(module):
                blocks, names, head = splitter.split(module)
                seq = BlockSequence(blocks, head, input_shape, name, names)
                if _reproduces(module, seq, input_shape):
                    return seq
    try:
        return fx_split(module, name, input_shape, split, max_blocks, num_classes)
    except UntraceableError as exc:
        raise BadInputError(
            f"model {name}: cannot split {type(module).__name__} into blocks; registered split functions: "
            f"{', '.join(SPLITTERS.names())} do not apply, and {exc.reason}; move that code into a submodule (it is "
            "then kept whole) and name cut points with `split:`, give the model `blocks` and `head` attributes, or "
            "return a BlockSequence"
        ) from None


def _is_tv(module: nn.Module, cls_path: str) -> bool:
    """``isinstance`` against a torchvision class, without importing torchvision for other models."""
    return any(f"{c.__module__}.{c.__qualname__}" == cls_path for c in type(module).__mro__)


class PoolHead(nn.Module):
    """Global average pool, flatten, then a classifier (the head of every torchvision CNN)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))


# --- ResNet --------------------------------------------------------------------------------------------------------


@register_splitter("resnet", lambda m: _is_tv(m, "torchvision.models.resnet.ResNet"))
def split_resnet(m: Any) -> Parts:
    """Stem (conv, BN, ReLU, max-pool), then every residual block of ``layer1 .. layer4``."""
    blocks: list[nn.Module] = [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)]
    names = ["stem"]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for k, block in enumerate(getattr(m, stage)):
            blocks.append(block)
            names.append(f"{stage}.{k}")
    return blocks, names, PoolHead(m.fc)


# --- MobileNet V2 / V3, EfficientNet: `features` then `classifier` ------------------------------------------------

_FEATURE_CNNS = (
    "torchvision.models.mobilenetv2.MobileNetV2",
    "torchvision.models.mobilenetv3.MobileNetV3",
    "torchvision.models.efficientnet.EfficientNet",
)


@register_splitter("features-classifier", lambda m: any(_is_tv(m, c) for c in _FEATURE_CNNS))
def split_features_classifier(m: Any) -> Parts:
    """Every entry of ``features`` is a block (stem, inverted-residual stages, last conv); pool + classifier."""
    blocks = list(m.features)
    return blocks, [f"features.{k}" for k in range(len(blocks))], PoolHead(m.classifier)


# --- ViT -----------------------------------------------------------------------------------------------------------


class ViTEmbed(nn.Module):
    """Patch projection, class token and position embedding of a torchvision ``VisionTransformer``."""

    def __init__(self, vit: Any) -> None:
        super().__init__()
        self.image_size = int(vit.image_size)
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"expects {self.image_size}x{self.image_size} images, got {x.shape[-2]}x{x.shape[-1]}")
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassTokenHead(nn.Module):
    """Final norm, then the classifier on the class token."""

    def __init__(self, norm: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x)[:, 0])


@register_splitter("vit", lambda m: _is_tv(m, "torchvision.models.vision_transformer.VisionTransformer"))
def split_vit(m: Any) -> Parts:
    """Embedding (patches + class token + positions), then every encoder layer; final norm + class-token head."""
    layers = list(m.encoder.layers)
    names = ["embed"] + [f"encoder.layers.{k}" for k in range(len(layers))]
    return [ViTEmbed(m), *layers], names, ClassTokenHead(m.encoder.ln, m.heads)


# --- Swin ----------------------------------------------------------------------------------------------------------


class ChannelsFirst(nn.Module):
    """Run a channels-last (``B, H, W, C``) Swin stage on and back to a ``B, C, H, W`` map."""

    def __init__(self, stage: nn.Module, takes_image: bool = False) -> None:
        super().__init__()
        self.stage = stage
        self.takes_image = takes_image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.takes_image:
            x = x.permute(0, 2, 3, 1)
        return self.stage(x).permute(0, 3, 1, 2)


class SwinHead(nn.Module):
    """Swin's final norm (channels last), global pool and classifier."""

    def __init__(self, swin: Any) -> None:
        super().__init__()
        self.norm = swin.norm
        self.classifier = swin.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x.permute(0, 2, 3, 1))
        return self.classifier(x.mean(dim=(1, 2)))


@register_splitter("swin", lambda m: _is_tv(m, "torchvision.models.swin_transformer.SwinTransformer"))
def split_swin(m: Any) -> Parts:
    """Patch embedding, each stage and each patch merging is a block; maps are exposed as ``C x H x W``."""
    blocks: list[nn.Module] = [ChannelsFirst(stage, takes_image=k == 0) for k, stage in enumerate(m.features)]
    return blocks, [f"features.{k}" for k in range(len(blocks))], SwinHead(m)


# --- generic: a user's model with `blocks` and `head` -------------------------------------------------------------


def _has_blocks_and_head(m: nn.Module) -> bool:
    return isinstance(getattr(m, "blocks", None), (nn.ModuleList, nn.Sequential)) and isinstance(
        getattr(m, "head", None), nn.Module
    )


@register_splitter("blocks-head", _has_blocks_and_head, priority=90)
def split_blocks_head(m: Any) -> Parts:
    """A model whose ``forward`` is ``head(blocks[-1](... blocks[0](x)))``: its ``blocks`` in order, its ``head``."""
    blocks = list(m.blocks)
    return blocks, [f"blocks.{k}" for k in range(len(blocks))], m.head
