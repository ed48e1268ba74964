"""Stage 1: the two models, frozen and split into blocks, and the data split deterministically."""

from __future__ import annotations

from pathlib import Path

from restnet_compile._util.hashing import sha256_file
from restnet_compile._util.images import ImagePolicy
from restnet_compile.config.build import IMAGE_FIELDS, BuildConfig, Preprocess
from restnet_compile.data import Splits, load_dataset, make_splits, split_sizes
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
    given: Preprocess | None = getattr(config, f"{role}_preprocess")
    channels = model.input_shape[0]
    if given is not None and given.mean is not None and given.std is not None:
        mean, std, source = given.mean, given.std, "build config"
    elif (meta := preprocess_meta(model)) is not None:
        mean, std, source = meta.mean, meta.std, meta.source
        if channels == 1 and len(mean) == 3:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    else:
        return Normalization((0.0,) * channels, (1.0,) * channels, "none: pixels in [0, 1] as they are")
    where = f"build config: {role}_preprocess" if source == "build config" else f"{role} model {model.model_name}"
    mean = fit_channels(mean, channels, f"{where}: mean", model.model_name)
    std = fit_channels(std, channels, f"{where}: std", model.model_name)
    return Normalization(mean, std, source)


def image_policy(config: BuildConfig) -> ImagePolicy:
    """How image files become the bundle's input: the large model's image fields in ``large_preprocess`` where it
    gives any (``resize``, ``crop``, ``interpolation``, ``invert``, ``fit_object``), else the large model's own
    policy (the demo models': MNIST's), else a plain resize to the input size."""
    given = config.large_preprocess
    if given is None or not given.model_fields_set & IMAGE_FIELDS:
        return default_image_policy(config.large) or ImagePolicy()
    return ImagePolicy(
        given.resize, given.crop, given.interpolation or "bilinear", given.invert or "never", given.fit_object
    )


def load_model(config: BuildConfig, role: str) -> BlockSequence:
    """``config``'s ``role`` model (``large`` or ``small``), frozen, split, normalising its input (see
    :func:`load_models`).

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model or a bad preprocessing contract.
    """
    weights = getattr(config, f"{role}_weights")
    raw = create_model(
        getattr(config, role),
        Path(weights) if weights else None,
        input_shape=config.input_shape,
        num_classes=config.num_classes,
        split=getattr(config, f"{role}_split"),
        max_blocks=config.max_blocks,
    )
    norm = normalization(config, role, raw)
    model = normalized(raw, norm)
    model.normalization = norm
    return model


def load_models(config: BuildConfig) -> tuple[BlockSequence, BlockSequence]:
    """The large and small model of ``config``, frozen, each normalising its input as it was trained on (see
    :func:`normalization`; the result is on the model as ``normalization``), checked to take the same input and give
    the same classes.

    Raises:
        BadInputError: unknown model, bad checkpoint, unsplittable model, a bad preprocessing contract, or models that
            disagree on input or classes.
    """
    models = [load_model(config, role) for role in ("large", "small")]
    large, small = models
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
    ds = load_dataset(config.dataset, model.input_shape, image_policy(config), config.bad_images)
    if len(ds) and int(ds.labels.max()) >= model.num_classes():
        raise BadInputError(
            f"dataset {config.dataset}: label {int(ds.labels.max())} but model {model.model_name} has "
            f"{model.num_classes()} classes"
        )
    calib, val, test = split_sizes(len(ds) - ds.train_only)
    return make_splits(ds, seed=config.seed, calib=calib, val=val, test=test)
