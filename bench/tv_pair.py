"""A torchvision pair at 224 px for cost and selection studies: random-init weights and a small 224 px dataset.

Nothing is downloaded. Each model is created with torchvision's random init (seeded), and its ``state_dict`` is saved
to a local file, which the build loads like any user's checkpoint. The data are MNIST digits from the built-in
``mnist5k`` set, scaled up 8x to 224 x 224 and repeated over 3 channels, as a uint8 ``.npz``. With random weights the
accuracies mean nothing, so builds of this pair use ``selection: feasible``: the device limits alone decide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from restnet_compile.data.dataset import load_dataset
from restnet_compile.models.tv import import_torchvision

SHAPE = (3, 224, 224)
NUM_CLASSES = 10


def random_weights(arch: str, out: Path, seed: int = 0, data: Path | None = None) -> Path:
    """Save a seeded random-init ``state_dict`` of torchvision ``arch`` (10 classes) to ``out/<arch>.pt``.

    With ``data`` (a ``digits_224`` file) the BatchNorm statistics are estimated on its first 64 images, as a network
    fresh from training would have them. Without it, torchvision's init gives BatchNorm mean 0 / variance 1 against
    activations that shrink layer by layer: the logits come out near 1e-11, every int8 output rounds to the same
    value, and no parity or accuracy figure means anything.
    """
    torch.manual_seed(seed)
    model = getattr(import_torchvision().models, arch)(num_classes=NUM_CLASSES)
    if data is not None:
        images = torch.from_numpy(np.array(load_dataset(str(data)).images[:64]))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # a plain average over the batches
        model.train()
        with torch.no_grad():
            for i in range(0, len(images), 16):
                model(images[i : i + 16])
        model.eval()
    path = out / f"{arch}.pt"
    torch.save(model.state_dict(), path)
    return path


def digits_224(out: Path, n: int = 240) -> Path:
    """``n`` mnist5k digits (a seeded random pick) as 3 x 224 x 224 uint8 images in ``out/digits224.npz``."""
    ds = load_dataset("mnist5k")
    pick = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])  # the file is sorted by label
    small = np.round(ds.images[pick, 0] * 255).astype(np.uint8)  # N x 28 x 28
    big = small.repeat(8, axis=1).repeat(8, axis=2)
    images = np.ascontiguousarray(np.broadcast_to(big[:, None], (n, *SHAPE)))
    path = out / "digits224.npz"
    np.savez(path, images=images, labels=ds.labels[pick].astype(np.int64))
    return path


def build_config(large: str, small: str, work: Path, profile: str, epochs: int = 1, **extra: object) -> dict:
    """A build config for ``large`` -> ``small`` at 224 px with local random weights.

    ``epochs`` of adapter tuning: the costs do not depend on it, and with random weights and ``selection: feasible``
    neither does what ships, so a bundle build may take 0 (least-squares init only).
    """
    data = digits_224(work)
    return {
        "large": large,
        "small": small,
        "large_weights": str(random_weights(large, work, data=data)),
        "small_weights": str(random_weights(small, work, seed=1, data=data)),
        "input_shape": list(SHAPE),
        "num_classes": NUM_CLASSES,
        "dataset": str(data),
        "profile": profile,
        "selection": "feasible",
        "tune": {"epochs": epochs, "batch_size": 16},
        "plan": {"max_candidates": 5},
        **extra,
    }


def app_profile(name: str, budget: str, out: Path) -> Path:
    """A copy of built-in profile ``name`` with another latency budget (the application's, not the device's)."""
    import yaml

    from restnet_compile.config.device import builtin_text

    data = yaml.safe_load(builtin_text("profiles", name))
    data["latency"]["budget"] = budget
    path = out / f"{name}-{budget}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def app_target(name: str, out: Path) -> Path:
    """A copy of built-in target ``name`` whose parity is recorded in the manifest but not enforced.

    Random weights give logits that differ between classes by less than one int8 step (MobileNetV3-Large: std 0.018),
    so top-1 agreement measures quantization noise, not the export. Trained weights get the built-in tolerances.
    """
    import yaml

    from restnet_compile.config.device import builtin_text

    data = yaml.safe_load(builtin_text("targets", name))
    data["name"] = f"{name}-random-weights"
    data["parity"] = {}
    path = out / f"{name}-random-weights.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
