"""The Fashion-MNIST benchmark's two architectures, as a user's own model file would build them.

torchvision's ``resnet18`` (the large, prefix donor: dense 3 x 3 convolutions, about 37 MFLOPs at 32 px) and
``shufflenet_v2_x0_5`` (the small, suffix donor: channel-split depthwise units, under 1 MFLOPs) with 10 classes,
taking 3 x 32 x 32 images (grey Fashion-MNIST repeated over three channels, as image files are read).
Each factory takes no argument, as ``path/file.py:factory`` specs are called; the weights come from the
benchmark's own seeded training (``bench/bench_fashion.py``).
"""

from __future__ import annotations

from torch import nn

from restnet_compile.models.tv import import_torchvision

NUM_CLASSES = 10
SHAPE = (3, 32, 32)


def resnet18() -> nn.Module:
    """torchvision ``resnet18``, 10 classes, random init."""
    return import_torchvision().models.resnet18(num_classes=NUM_CLASSES)


def shufflenet() -> nn.Module:
    """torchvision ``shufflenet_v2_x0_5``, 10 classes, random init."""
    return import_torchvision().models.shufflenet_v2_x0_5(num_classes=NUM_CLASSES)
