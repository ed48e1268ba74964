"""Stage 1: the two models, frozen and split into blocks, and the data split deterministically."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.images import ImagePolicy
from restnet_compile.config.build import IMAGE_FIELDS, AnchorModel, BuildConfig, Preprocess
from restnet_compile.data import Splits, load_dataset, make_splits, split_sizes
from restnet_compile.data.checks import check_classes, check_labels
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.models.checkpoints import weights_file
from restnet_compile.models.normalize import Normalization, fit_channels, normalized
from restnet_compile.models.preprocess_meta import preprocess_meta
from restnet_compile.models.registry import default_image_policy, shipped_weights


def weights_sha(name: str, weights: str | None) -> str:
    """sha256 of the checkpoint a model was loaded from (a folder's weights file; "" when it has none)."""
    path = Path(weights) if weights else shipped_weights(name)
    if path.is_dir():
        path = weights_file(path, name)
    return sha256_file(path) if path.is_file() else ""


def normalization(config: BuildConfig, role: str, model: BlockSequence) -> Normalization:
    """The ``large`` or ``small`` model's input normalisation: the config's, else its library's metadata, else none.

    timm records three values for RGB weights; a model created for one channel gets their average, as timm adapts
    RGB filters to one channel by summing them.

    Raises:
        BadInputError: ``mean`` / ``std`` of another length than the model's channels.
    """
    return spec_normalization(getattr(config, f"{role}_preprocess"), f"{role}_preprocess", role, model)


def spec_normalization(given: Preprocess | None, field: str, role: str, model: BlockSequence) -> Normalization:
    """A model's input normalisation (see :func:`normalization`); ``field`` names where the config gives it
    (``large_preprocess``, ``models[1].preprocess``) and ``role`` the model in messages (``large``, ``models[1]``).

    Raises:
        BadInputError: ``mean`` / ``std`` of another length than the model's channels.
    """
    channels = model.input_shape[0]
    if given is not None and given.mean is not None and given.std is not None:
        mean, std, source = given.mean, given.std, "build config"
    elif (meta := preprocess_meta(model)) is not None:
        mean, std, source = meta.mean, meta.std, meta.source
        if channels == 1 and len(mean) == 3:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    else:
        return Normalization((0.0,) * channels, (1.0,) * channels, "none: pixels in [0, 1] as they are")
    where = f"build config: {field}" if source == "build config" else f"{role} model {model.model_name}"
    mean = fit_channels(mean, channels, f"{where}: mean", model.model_name)
    std = fit_channels(std, channels, f"{where}: std", model.model_name)
    return Normalization(mean, std, source)


def image_policy(config: BuildConfig) -> ImagePolicy:
    """How image files become the bundle's input: the large model's image fields in ``large_preprocess`` where it
    gives any (``resize``, ``crop``, ``interpolation``, ``invert``, ``fit_object``), else the large model's own
    policy (the demo models': MNIST's), else a plain resize to the input size. A family's large model is its first
    anchor (the largest, once the family is ordered)."""
    first = config.anchor_specs()[0]
    given = first.preprocess
    if given is None or not given.model_fields_set & IMAGE_FIELDS:
        return default_image_policy(first.name) or ImagePolicy()
    return ImagePolicy(
        given.resize, given.crop, given.interpolation or "bilinear", given.invert or "never", given.fit_object
    )


def check_weights(config: BuildConfig, role: str) -> None:
    """Refuse ``config``'s ``role`` model when it would run with the random weights it is created with: no
    ``*_weights`` and no weights shipped with it (the demo models), unless ``allow_random_weights``.

    Raises:
        BadInputError: one line naming the model and the two ways out.
    """
    spec = AnchorModel(name=getattr(config, role), weights=getattr(config, f"{role}_weights"))
    check_spec_weights(config, spec, role, f"give {role}_weights")


def check_spec_weights(config: BuildConfig, spec: AnchorModel, role: str, way_out: str) -> None:
    """:func:`check_weights` of one anchor; ``way_out`` says where its weights are given (``give large_weights``)."""
    if config.allow_random_weights or spec.weights or shipped_weights(spec.name).is_file():
        return
    raise BadInputError(
        f"model {spec.name} ({role}): no weights given, so it would run with random weights; {way_out} "
        "(a checkpoint file or a timm / hub folder), or set allow_random_weights: true"
    )


def load_spec(config: BuildConfig, spec: AnchorModel, field: str, role: str) -> BlockSequence:
    """One model of ``config``, frozen, split, normalising its input (see :func:`load_models`); ``field`` and
    ``role`` name it in messages (see :func:`spec_normalization`).

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model or a bad preprocessing contract.
    """
    raw = create_model(
        spec.name,
        Path(spec.weights) if spec.weights else None,
        input_shape=config.input_shape,
        num_classes=config.num_classes,
        split=spec.split,
        max_blocks=config.max_blocks,
    )
    norm = spec_normalization(spec.preprocess, field, role, raw)
    model = normalized(raw, norm)
    model.normalization = norm
    return model


def load_model(config: BuildConfig, role: str) -> BlockSequence:
    """``config``'s ``role`` model (``large`` or ``small``), frozen, split, normalising its input (see
    :func:`load_models`).

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model or a bad preprocessing contract.
    """
    return load_spec(config, role_spec(config, role), f"{role}_preprocess", role)


def role_spec(config: BuildConfig, role: str) -> AnchorModel:
    """The ``large`` or ``small`` model of a pair config as one anchor's fields."""
    return AnchorModel(
        name=getattr(config, role),
        weights=getattr(config, f"{role}_weights"),
        preprocess=getattr(config, f"{role}_preprocess"),
        split=getattr(config, f"{role}_split"),
    )


def check_agree(models: list[BlockSequence]) -> None:
    """Refuse models that take different inputs or give different classes (the first disagreeing two, named).

    Raises:
        BadInputError: one line naming both models and what differs.
    """
    first = models[0]
    for other in models[1:]:
        if first.input_shape != other.input_shape:
            shapes = f"{'x'.join(map(str, first.input_shape))} vs {'x'.join(map(str, other.input_shape))}"
            raise BadInputError(f"models {first.model_name} and {other.model_name} take different inputs: {shapes}")
        if first.num_classes() != other.num_classes():
            raise BadInputError(
                f"models {first.model_name} and {other.model_name} have different classes: "
                f"{first.num_classes()} vs {other.num_classes()}"
            )


def load_models(config: BuildConfig) -> tuple[BlockSequence, BlockSequence]:
    """The large and small model of ``config``, frozen, each normalising its input as it was trained on (see
    :func:`normalization`; the result is on the model as ``normalization``), checked to take the same input and give
    the same classes.

    Raises:
        BadInputError: a model without weights (see :func:`check_weights`), unknown model, bad checkpoint,
            unsplittable model, a bad preprocessing contract, or models that disagree on input or classes.
    """
    models = []
    for role in ("large", "small"):
        models.append(load_model(config, role))
        check_weights(config, role)
    check_agree(models)
    large, small = models
    return large, small


def load_splits(config: BuildConfig, model: BlockSequence) -> Splits:
    """The dataset of ``config`` at ``model``'s input shape, split deterministically; its notes gain a line when the
    data shows fewer classes than the model has.

    Raises:
        BadInputError: unreadable data, other image shape, labels the model has no class for, or a split of one
            class (pixels are checked as they are read).
    """
    ds = load_dataset(config.dataset, model.input_shape, image_policy(config), config.bad_images)
    where = f"dataset {config.dataset}"
    check_labels(ds.labels, model.num_classes(), where, f"model {model.model_name}")
    given, held = config.splits, len(ds) - ds.train_only
    if given.held_out == "test":  # evaluation sizes by the training-only images; the test split is every held-out one
        default = (*split_sizes(ds.train_only)[:2], held)
    else:
        default = split_sizes(held)
    calib, val, test = given.calib or default[0], given.val or default[1], given.test or default[2]
    splits = make_splits(ds, seed=config.seed, calib=calib, val=val, test=test, held_out=given.held_out)
    if given.train is not None and given.train < len(splits.train):
        splits = dataclasses.replace(splits, train=splits.train.subset(np.arange(given.train), "first"))
    check_classes([(n, getattr(splits, n).labels) for n in ("train", "calib", "val", "test")], where)
    present = len(np.unique(ds.labels))
    if present < model.num_classes():
        note = f"data has {present} of the model's {model.num_classes()} classes"
        splits = dataclasses.replace(splits, notes=(*splits.notes, note))
    return splits
