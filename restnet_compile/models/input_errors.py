"""What a model's failure on the build's input means, in one line that says what to do (not PyTorch's own text).

Two failures a user meets first: a grey (1-channel) model paired with an RGB one, so one of them gets the other's
channels, and an input smaller than a model's downsampling allows (a pooling or strided layer meets a map of one
pixel). Anything else keeps the first line of the error beside the model and the shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from restnet_compile.errors import BadInputError

_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels")
_TOO_SMALL = (
    "output size is too small",
    "kernel size can't be greater than actual input size",
    "smaller than kernel size",
    "padding should be at most half",
    "input size is too small",
)
#: Square sizes tried to find one a model takes, when the given input is too small.
_SIZES = (32, 48, 64, 96, 128, 160, 224, 256, 384, 512)


def _kind(channels: int) -> str:
    return {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")


def input_failure(
    where: str, shape: Sequence[int], exc: BaseException, takes: Callable[[tuple[int, int, int]], bool]
) -> BadInputError:
    """The one-line error for ``where`` (``model X`` or ``model X: block 2 (layer2)``) failing on ``shape`` (C, H, W).

    ``takes(shape)`` says whether the model runs on another shape; it is tried only to suggest a size that works.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    c, h, w = (int(s) for s in shape)
    given = f"{c}x{h}x{w}"
    m = _CHANNELS.search(text)
    if m:
        wanted, got = int(m.group(1)), int(m.group(2))
        return BadInputError(
            f"{where}: takes {_kind(wanted)} ({wanted}-channel) images but the build's input is {given} "
            f"({_kind(got)}); both models of a pair read the same input: pair it with {_article(_kind(wanted))} "
            f"model, or give --input-shape {wanted},{h},{w} where the other model takes that too"
        )
    if any(s in text.lower() for s in _TOO_SMALL):
        bigger = next((s for s in _SIZES if s > max(h, w) and takes((c, s, s))), None)
        hint = f"give a larger --input-shape, e.g. {c},{bigger},{bigger}" if bigger else "give a larger --input-shape"
        return BadInputError(
            f"{where}: input {given} is smaller than its downsampling allows (a layer gets a map too small for its "
            f"kernel); {hint}"
        )
    return BadInputError(f"{where} cannot take input {given}: {first}")


def _article(kind: str) -> str:
    """``a grey`` / ``an RGB``."""
    return f"{'an' if kind[:1] in 'AEIOURaeiou' else 'a'} {kind}"
