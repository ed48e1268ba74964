"""A uniform block decomposition shared by every model family.

A model is a sequence of blocks followed by a head. Block ``k`` maps the output of block ``k-1`` (or the image for
``k == 0``) to a feature of a known kind: a feature map ``C x H x W`` or a token sequence ``N x D``. Stitching cuts
the sequence between two blocks, so every model that can be written as a ``BlockSequence`` can be stitched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from restnet_compile.errors import BadInputError
from restnet_compile.models.input_errors import input_failure

FeatureKind = Literal["map", "tokens"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``mean`` / ``std`` in ``[0, 1]`` pixel units and where they came from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    @property
    def identity(self) -> bool:
        """Whether this leaves pixels as they are."""
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)


@dataclass(frozen=True)
class FeatureSpec:
    """Shape of one block's output for a single image (no batch dimension).

    Attributes:
        kind: "map" for ``C x H x W`` feature maps, "tokens" for ``N x D`` token sequences.
        shape: ``(C, H, W)`` or ``(N, D)``.
    """

    kind: FeatureKind
    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        """Channels of a map, embedding width of tokens."""
        return self.shape[0] if self.kind == "map" else self.shape[1]

    @property
    def resolution(self) -> tuple[int, int] | int:
        """Spatial size ``(H, W)`` of a map, or the token count."""
        return (self.shape[1], self.shape[2]) if self.kind == "map" else self.shape[0]

    @property
    def grid(self) -> tuple[int, int]:
        """Spatial grid ``(H, W)``: a map's size, or the square patch grid of a token sequence.

        A token sequence is read as a few prefix tokens (class, distillation) followed by a square patch grid, the
        largest square that fits: 50 tokens are 1 + 7x7, 197 are 1 + 14x14, 49 are 0 + 7x7.
        """
        if self.kind == "map":
            return (self.shape[1], self.shape[2])
        side = math.isqrt(self.shape[0])
        return (side, side)

    @property
    def prefix_tokens(self) -> int:
        """Tokens before the patch grid (class token...); 0 for maps."""
        return 0 if self.kind == "map" else self.shape[0] - self.grid[0] * self.grid[1]

    def describe(self) -> str:
        """Short text such as ``map 32x14x14`` or ``tokens 50x64``."""
        return f"{self.kind} " + "x".join(str(s) for s in self.shape)


class BlockSequence(nn.Module):
    """A model as ``blocks`` then ``head``; ``forward`` runs them all.

    Args:
        blocks: The blocks, in order.
        head: Maps the last block's output to logits.
        input_shape: ``(C, H, W)`` of one input image.
        name: Registered model name, for messages and the manifest.
        block_names: Where each block came from in the original model (``layer1.0``), for messages.
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        head: nn.Module,
        input_shape: tuple[int, int, int],
        name: str,
        block_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not blocks:
            raise BadInputError(f"model {name}: no blocks to stitch between")
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.input_shape: tuple[int, int, int] = input_shape
        self.model_name = name
        self.block_names = list(block_names) if block_names else [f"block{k}" for k in range(len(blocks))]
        self._specs: list[FeatureSpec] | None = None
        self.pretrained_cfg: dict[str, object] | None = None  # timm's, for a timm model (see ``preprocess_meta``)
        self.normalization: Normalization | None = None  # the input normalisation folded into block 0 (a build's)
        self._largest = 0  # elements per image of the largest layer output, found with the specs

    def _runs(self, shape: tuple[int, int, int]) -> bool:
        """Whether every block and the head run on two zero images of ``shape``."""
        try:
            with torch.no_grad():
                self(torch.zeros(2, *shape))
        except Exception:
            return False
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Run blocks ``start .. stop-1`` on ``x`` (the output of block ``start-1``)."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def activation_shapes(self) -> list[tuple[int, ...]]:
        """One image's input and block output shapes, and the largest output of any layer inside a block (flattened:
        a stem's convolution before its pooling, an inverted residual's expansion): what :mod:`.batching` sizes
        forward batches from."""
        specs = self.feature_specs()
        return [self.input_shape, *(s.shape for s in specs), (self._largest,)]

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output for the batch ``x``, in order."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    def feature_specs(self) -> list[FeatureSpec]:
        """The kind and shape of every block's output, found by one dummy forward pass.

        Raises:
            BadInputError: a block fails on the model's input shape, or its output is neither a map nor tokens; the
                message names the model and the block.
        """
        if self._specs is None:
            was_training = self.training
            self.eval()
            specs = []
            x = torch.zeros(2, *self.input_shape)
            largest = [0]

            def record(_m: nn.Module, _i: object, out: object) -> None:
                if isinstance(out, torch.Tensor) and out.dim() > 0:
                    largest[0] = max(largest[0], out.numel() // out.shape[0])

            hooks = [m.register_forward_hook(record) for m in self.modules() if not any(m.children())]
            with torch.no_grad(), contextlib.ExitStack() as stack:
                for h in hooks:
                    stack.callback(h.remove)
                for k, block in enumerate(self.blocks):
                    where = f"model {self.model_name}: block {k} ({self.block_names[k]})"
                    try:
                        x = block(x)
                    except Exception as exc:  # shape errors surface as RuntimeError, AssertionError, ValueError...
                        raise input_failure(where, self.input_shape, exc, self._runs) from None
                    specs.append(_spec_of(x, where))
                try:
                    self.head(x)
                except Exception as exc:
                    raise BadInputError(
                        f"model {self.model_name}: head fails on {specs[-1].describe()}: {_first_line(exc)}"
                    ) from None
            self.train(was_training)
            self._specs, self._largest = specs, largest[0]
        return self._specs

    def num_classes(self) -> int:
        """Width of the head's output (logits per image)."""
        self.feature_specs()
        self.eval()
        with torch.no_grad():
            return int(self(torch.zeros(1, *self.input_shape)).shape[-1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _spec_of(t: object, where: str = "a block") -> FeatureSpec:
    if isinstance(t, torch.Tensor) and t.dim() == 4:
        return FeatureSpec("map", tuple(int(s) for s in t.shape[1:]))
    if isinstance(t, torch.Tensor) and t.dim() == 3:
        return FeatureSpec("tokens", tuple(int(s) for s in t.shape[1:]))
    got = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
    raise BadInputError(f"{where}: output must be a map (B,C,H,W) or tokens (B,N,D), got {got}")
