"""Stage 1: the two models, frozen and split into blocks, and the data split deterministically."""

from __future__ import annotations

from pathlib import Path

from restnet_compile._util.hashing import sha256_file
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import Splits, load_dataset, make_splits, split_sizes
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.models.checkpoints import weights_file
from restnet_compile.models.registry import shipped_weights


def weights_sha(name: str, weights: str | None) -> str:
    """sha256 of the checkpoint a model was loaded from (a folder's weights file; "" when it has none)."""
    path = Path(weights) if weights else shipped_weights(name)
    if path.is_dir():
        path = weights_file(path, name)
    return sha256_file(path) if path.is_file() else ""


def load_models(config: BuildConfig) -> tuple[BlockSequence, BlockSequence]:
    """The large and small model of ``config``, frozen, checked to take the same input and give the same classes.

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model, or models that disagree on input or classes.
    """
    opts = {"input_shape": config.input_shape, "num_classes": config.num_classes}
    large = create_model(config.large, Path(config.large_weights) if config.large_weights else None, **opts)
    small = create_model(config.small, Path(config.small_weights) if config.small_weights else None, **opts)
    if large.input_shape != small.input_shape:
        shapes = f"{'x'.join(map(str, large.input_shape))} vs {'x'.join(map(str, small.input_shape))}"
        raise BadInputError(f"models {large.model_name} and {small.model_name} take different inputs: {shapes}")
    if large.num_classes() != small.num_classes():
        raise BadInputError(
            f"models {large.model_name} and {small.model_name} have different classes: "
            f"{large.num_classes()} vs {small.num_classes()}"
        )
    return large, small


def load_splits(config: BuildConfig, model: BlockSequence) -> Splits:
    """The dataset of ``config`` at ``model``'s input shape, split deterministically.

    Raises:
        BadInputError: unreadable data, other image shape, or labels the model has no class for.
    """
    ds = load_dataset(config.dataset, model.input_shape)
    if len(ds) and int(ds.labels.max()) >= model.num_classes():
        raise BadInputError(
            f"dataset {config.dataset}: label {int(ds.labels.max())} but model {model.model_name} has "
            f"{model.num_classes()} classes"
        )
    calib, val, test = split_sizes(len(ds) - ds.train_only)
    return make_splits(ds, seed=config.seed, calib=calib, val=val, test=test)
