"""Re-run a bundle's stored reference inputs with the device runtime and compare with what the build recorded.

The build writes ``reference.npz``: ``inputs`` (a few test images, N x C x H x W float32 in [0, 1]) and, per shipped
variant, ``torch_<id>`` (the PyTorch fp32 logits) and ``deployed_<id>`` (the exported model's logits as the build's
runtime computed them). On a device, the deployed outputs must be reproduced: same top-1 on every input and logits
within ``atol``. Agreement with PyTorch is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from restnet_compile.bundle.manifest import REFERENCE_FILE
from restnet_compile.runtime.bundle import Bundle, BundleError


@dataclass(frozen=True)
class VariantCheck:
    """Outcome of one variant's re-run."""

    variant: str
    max_abs_diff_deployed: float
    top1_same_as_deployed: float
    top1_agreement_torch: float
    ok: bool


def reference_atol(deployed: np.ndarray[Any, Any]) -> float:
    """Tolerance for reproducing the deployed logits: 1 % of their range (a few int8 steps, fp16 rounding)."""
    return max(1e-4, 0.01 * float(deployed.max() - deployed.min()))


def verify_reference(bundle: Bundle) -> list[VariantCheck]:
    """Run every shipped variant on the stored inputs and compare.

    Raises:
        BundleError: the bundle has no reference file or it lacks a shipped variant.
    """
    path = bundle.root / REFERENCE_FILE
    if not path.is_file():
        raise BundleError(f"{bundle.root}: no {REFERENCE_FILE}; rebuild the bundle to get reference inputs")
    with np.load(path) as ref:
        data = {k: ref[k] for k in ref.files}
    checks = []
    for v in bundle.variants:
        if f"deployed_{v.id}" not in data:
            raise BundleError(f"{bundle.root}: {REFERENCE_FILE} has no reference for variant {v.id}")
        out = bundle.run(data["inputs"], v.id)
        deployed, torch_ref = data[f"deployed_{v.id}"], data[f"torch_{v.id}"]
        diff = float(np.abs(out - deployed).max())
        same = float((out.argmax(1) == deployed.argmax(1)).mean())
        agree = float((out.argmax(1) == torch_ref.argmax(1)).mean())
        checks.append(VariantCheck(v.id, diff, same, agree, ok=same == 1.0 and diff <= reference_atol(deployed)))
    return checks
