"""Model sources registered by name: ``create_model("demo-large-cnn")`` like timm's ``create_model``.

Registered names are the demo zoo and a few torchvision architectures (see :mod:`restnet_compile.models.sources`);
``torchvision:NAME`` and ``torchvision.models:NAME`` are any torchvision classification architecture, and so is a
bare name that is not registered; ``timm:NAME`` is any timm architecture; any other name with a colon is a user's
model, ``path/to/file.py:ClassName`` or ``package.module:factory``. An unknown name is refused in one line with the
close matches among the registered and torchvision names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from torch import nn

from restnet_compile._util.images import ImagePolicy
from restnet_compile._util.registry import Registry
from restnet_compile.config.names import DEMO_MODELS, TORCHVISION_ARCHS
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import BlockSequence
from restnet_compile.models.checkpoints import load_checkpoint
from restnet_compile.models.demo import (
    DEMO_IMAGE_POLICY,
    demo_hybrid_vit,
    demo_large_cnn,
    demo_mid_cnn,
    demo_small_cnn,
    demo_vit,
)
from restnet_compile.models.fx_split import DEFAULT_MAX_BLOCKS
from restnet_compile.models.sources import (
    TORCHVISION_DEFAULT_SHAPE,
    ModelOptions,
    check_torchvision_arch,
    close_matches,
    create_timm_model,
    create_user_model,
    is_user_spec,
    torchvision_factory,
)
from restnet_compile.models.splitters import split_model
from restnet_compile.models.timm_source import is_timm_spec
from restnet_compile.models.tv import classification_names, torchvision_arch

ModelSource = Callable[[str, ModelOptions], BlockSequence]
MODELS: Registry[ModelSource] = Registry("model")


def shipped_weights(name: str) -> Path:
    """Path of the weights that ship with the package for demo model ``name``."""
    return Path(str(resources.files("restnet_compile.models").joinpath(f"weights/{name}.pt")))


def load_state_dict(model: nn.Module, path: Path, name: str | None = None) -> None:
    """Load a state_dict checkpoint into ``model``, never unpickling code (safetensors, or ``weights_only=True``).

    Raises:
        BadInputError: the file is missing, is not a plain state_dict, or does not match the architecture.
    """
    load_checkpoint(model, Path(path), name or str(getattr(model, "model_name", type(model).__name__)))


def default_image_policy(name: str) -> ImagePolicy | None:
    """The image policy model ``name`` was trained with, where the registry knows it (the demo models: MNIST's)."""
    return DEMO_IMAGE_POLICY if name in DEMO_MODELS else None


def _demo_source(factory: Callable[[], BlockSequence]) -> ModelSource:
    def build(name: str, opts: ModelOptions) -> BlockSequence:
        model = factory()
        if opts.split:
            raise BadInputError(f"model {name}: is already split into blocks; `split:` applies to traced models")
        if opts.input_shape is not None and tuple(opts.input_shape) != model.input_shape:
            shape = "x".join(map(str, model.input_shape))
            raise BadInputError(f"model {name}: takes only {shape} inputs, not {'x'.join(map(str, opts.input_shape))}")
        if opts.num_classes is not None and opts.num_classes != 10:
            raise BadInputError(f"model {name}: has 10 classes, not {opts.num_classes}")
        load_state_dict(model, opts.weights or shipped_weights(name), name)
        return model

    return build


def _torchvision_source(arch: str) -> ModelSource:
    make = torchvision_factory(arch)

    def build(name: str, opts: ModelOptions) -> BlockSequence:
        shape = tuple(opts.input_shape or TORCHVISION_DEFAULT_SHAPE)
        return split_model(make(name, opts), name, shape, opts.split, opts.max_blocks, opts.num_classes)  # type: ignore[arg-type]

    return build


_DEMO_FACTORIES = (demo_large_cnn, demo_mid_cnn, demo_small_cnn, demo_vit, demo_hybrid_vit)
for _name, _factory in zip(DEMO_MODELS, _DEMO_FACTORIES, strict=True):
    MODELS.register(_name)(_demo_source(_factory))
for _arch in TORCHVISION_ARCHS:
    MODELS.register(_arch)(_torchvision_source(_arch))


def _source(name: str) -> ModelSource:
    """The source that builds ``name``.

    Raises:
        BadInputError: an unknown name or torchvision architecture, with close matches.
    """
    if is_timm_spec(name):
        return create_timm_model
    arch = torchvision_arch(name)
    if arch is not None:
        check_torchvision_arch(name, arch)
        return lambda spec, opts: _torchvision_source(arch)(spec, opts)
    if is_user_spec(name):
        return create_user_model
    if name in MODELS:
        return MODELS.get(name)
    known = classification_names()
    if name in known:
        return _torchvision_source(name)
    close = close_matches(name, sorted({*MODELS.names(), *known}))
    raise BadInputError(
        f"unknown model {name!r}; valid choices: {', '.join(MODELS.names())}, any torchvision classification model "
        f"(NAME or torchvision:NAME), timm:NAME, path/to/file.py:Class, module:factory{'; ' + close if close else ''}"
    )


def create_model(
    name: str,
    weights: Path | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    split: Sequence[str] | None = None,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
) -> BlockSequence:
    """Build model ``name`` as a frozen ``BlockSequence`` in eval mode with its weights.

    Args:
        name: A registered model name (see ``MODELS.names()``), a torchvision classification architecture
            (``NAME``, ``torchvision:NAME``, ``torchvision.models:NAME``), ``timm:NAME``, or ``path/file.py:Class`` /
            ``module:factory``.
        weights: A state_dict file (``.safetensors``, ``.pt``...) or a timm / hub weights folder; demo models default
            to the weights shipped with the package.
        input_shape: ``(C, H, W)`` of one image (torchvision default 3x224x224, timm its ``pretrained_cfg``; demo
            models take 1x28x28 only).
        num_classes: Classifier width (torchvision default 1000).
        split: Module or graph node names to cut after (generic traced split) instead of the default rule.
        max_blocks: Most blocks the generic split's default rule makes.

    Raises:
        BadInputError: unknown name, bad checkpoint, a model that cannot be split or cannot take ``input_shape``.
    """
    opts = ModelOptions(
        Path(weights) if weights else None, input_shape, num_classes, tuple(split) if split else None, max_blocks
    )
    model = _source(name)(name, opts)
    model.requires_grad_(False)  # models are frozen donors: only adapters are ever trained
    model.eval()
    model.feature_specs()  # fail now, naming the block, if the model cannot take its input
    return model
