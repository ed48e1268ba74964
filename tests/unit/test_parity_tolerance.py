"""The float targets' parity rule: an absolute logit difference plus a share of the logits' scale."""

from __future__ import annotations

import numpy as np

from restnet_compile.config.device import load_target
from restnet_compile.export.parity import check_parity


class Shifted:
    """A runner whose logits are PyTorch's plus ``delta``."""

    def __init__(self, reference: np.ndarray, delta: float) -> None:
        self.out = reference + delta

    def run(self, images: np.ndarray, variant: str) -> np.ndarray:
        return self.out


def _check(scale: float, delta: float) -> tuple[str, ...]:
    reference = np.array([[scale, 0.0, -1.0], [0.5, scale / 2, 0.0]], np.float32)
    labels = np.array([0, 1])
    images = np.zeros((2, 1, 2, 2), np.float32)
    return check_parity(Shifted(reference, delta), "v", reference, images, labels, load_target("tflite-fp32")).failures


def test_float_parity_allows_rounding_that_grows_with_the_logits() -> None:
    assert _check(1.0, 0.9e-4) == ()
    (why,) = _check(1.0, 1.2e-4)
    assert why.startswith("fp32 max |diff| 1.20e-04 > 1e-04 + 1e-05 x max |logit| 1")
    assert _check(40.0, 4.5e-4) == ()  # 1e-4 + 40 x 1e-5 = 5e-4
    assert _check(40.0, 5.5e-4) != ()
    assert _check(40.0, 0.1) != ()  # a conversion error is still one
