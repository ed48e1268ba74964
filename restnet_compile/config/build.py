"""The build configuration: which models, which data, how to stitch and tune, for which profile and target."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from restnet_compile._util.units import parse_size
from restnet_compile.config.device import Strict, describe_validation_error
from restnet_compile.errors import BadInputError

#: The name of the stitch-candidate rule (``restnet_compile.stitching.plan``), as manifests and analyses record it.
CANDIDATE_RULE = "max-cka-per-cut-within-depth-band"


class PlanSettings(Strict):
    """The candidate rule's parameters (the rule itself: ``restnet_compile.stitching.plan``)."""

    depth_band: float = Field(
        0.35,
        gt=0,
        le=1,
        description="largest difference of relative depth between the front model's cut and the back model's block "
        "it resumes after",
    )
    min_suffix_blocks: int = Field(1, ge=1, description="blocks of the back model that must remain after the stitch")
    max_candidates: int = Field(8, ge=1, description="most candidates planned (those of highest CKA are kept)")
    order: Literal["large-small", "small-large"] = Field(
        "large-small", description="large prefix -> small suffix (ReStNet) or small prefix -> large suffix (SN-Net)"
    )


class SplitSettings(Strict):
    """How many images the calibration, validation and test splits take (the training split gets the rest, or the
    first ``train`` of them).

    Unset sizes follow the default rule: 500 / 500 / 1,000 from 4,000 images on, else 10 / 10 / 20 %. A larger
    validation split separates variants whose accuracies are close: one binomial standard error is
    ``sqrt(p (1 - p) / n)``, 1.3 points at 90 % on 500 images, 0.5 on 3,000.
    """

    calib: int | None = Field(None, ge=4, description="calibration images: CKA, least-squares init, int8 calibration")
    val: int | None = Field(None, ge=1, description="validation images: early stopping and the selection")
    test: int | None = Field(None, ge=1, description="test images: every reported accuracy and parity")
    train: int | None = Field(
        None, ge=1, description="training images for tuning, the first of the seeded order (default: all the rest)"
    )
    held_out: Literal["all", "test"] = Field(
        "all",
        description="what the held-out file of an IDX folder with a train and a t10k/test pair gives: all: "
        "calibration, validation and test; test: the test split alone (all of it unless test is set), calibration "
        "and validation then drawn from the training file",
    )


class TuneSettings(Strict):
    """Adapter tuning: which adapter, which recipe, and the fine-tuning hyper-parameters.

    Both donor models stay frozen; only the adapter trains, with Adam and a cosine learning-rate schedule over
    ``epochs`` (``restnet_compile.stitching.tuning``).
    """

    epochs: int = Field(20, ge=0, description="largest number of passes of distillation over the training split")
    lr: float = Field(2e-3, gt=0, description="Adam learning rate of the adapter (start of the cosine schedule)")
    batch_size: int = Field(64, ge=1, description="minibatch size of feature matching and distillation")
    distill_weight: float = Field(
        1.0,
        ge=0,
        le=1,
        description="weight of the KL term towards the large model's logits; the rest is cross-entropy (1: pure "
        "distillation, the labels only pick the best adapter on validation)",
    )
    temperature: float = Field(4.0, gt=0, description="distillation temperature")
    patience: int = Field(
        20,
        ge=1,
        description="epochs without validation gain before stopping (equal to epochs: the low-rate last epochs of "
        "the cosine schedule gain most)",
    )
    adapter: str = Field(
        "conv-bn-relu",
        description="adapter of every candidate it can join (the default joins map -> map); the others, and all "
        "with auto, keep their planned adapter",
    )
    recipe: str = Field("ls+feature-match+distill", description="tuning recipe, from the least-squares start")
    match_epochs: int = Field(
        3, ge=0, description="feature-matching passes of recipes that match the back model's activations"
    )
    match_lr: float = Field(3e-3, gt=0, description="Adam learning rate of feature matching")
    qat: int = Field(
        0,
        ge=0,
        description="passes of quantization-aware adapter tuning after the recipe: int8 rounding of the adapter's "
        "weights and of the activations after the adapter and every suffix block simulated, a tenth of lr, the "
        "best adapter under it kept (0: off)",
    )


class Preprocess(Strict):
    """The input a donor model was trained on: what its weights expect, in pixel units of ``[0, 1]``.

    ``mean`` / ``std`` are folded into every exported variant's graph (its first op), so every variant of a bundle
    takes the same device input. ``resize`` / ``crop`` / ``interpolation`` / ``invert`` / ``fit_object`` apply to
    image files (folder datasets and ``run --input``); the large model's policy is the bundle's, since all variants
    share one input. Given none of them, the large model's own policy applies (the demo models': MNIST's).
    """

    mean: tuple[float, ...] | None = Field(None, description="per-channel mean subtracted from pixels in [0, 1]")
    std: tuple[float, ...] | None = Field(None, description="per-channel standard deviation the pixels are divided by")
    resize: int | None = Field(None, ge=1, description="image files: resize the shorter side to this many pixels")
    crop: int | None = Field(None, ge=1, description="image files: then centre-crop a square of this many pixels")
    interpolation: Literal["nearest", "bilinear", "bicubic"] | None = Field(
        None, description="image files: resize filter (default bilinear)"
    )
    invert: Literal["never", "light-background"] | None = Field(
        None,
        description="image files: light-background inverts a picture whose border is lighter than mid-grey (dark "
        "strokes on paper become light on dark, as MNIST's digits are); default never",
    )
    fit_object: int | None = Field(
        None,
        ge=1,
        description="image files: crop to the object, fit it in a square of this many pixels keeping its aspect and "
        "centre it by its centre of mass in the input (MNIST: 20 in 28); default: keep the whole picture",
    )

    @field_validator("std")
    @classmethod
    def _positive(cls, std: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if std is not None and any(s <= 0 for s in std):
            raise ValueError(f"every std must be > 0; got {', '.join(f'{s:g}' for s in std)}")
        return std

    @model_validator(mode="after")
    def _pairs(self) -> Preprocess:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        return self


#: The fields of :class:`Preprocess` that make an image file's policy (the rest is the in-graph normalisation).
IMAGE_FIELDS = frozenset({"resize", "crop", "interpolation", "invert", "fit_object"})


#: The most anchors a family takes: their letters in variant ids run from ``L`` (the largest) to ``S`` (the smallest).
MAX_ANCHORS = 8
#: The fields of the pair form (``large`` / ``small``) that a family (``models``) gives per entry instead.
PAIR_FIELDS = (
    "large",
    "small",
    "large_weights",
    "small_weights",
    "large_preprocess",
    "small_preprocess",
    "large_split",
    "small_split",
)


class AnchorModel(Strict):
    """One anchor of a family (``models:``): exactly what ``large`` / ``small`` give for a pair.

    In YAML an entry is a mapping, or just the model's name; ``NAME=WEIGHTS`` is a name with its weights.
    """

    name: str = Field(description="registered name, timm:NAME, a torchvision name or path/file.py:Class")
    weights: str | None = Field(None, description="state_dict file or timm / hub folder of this model")
    preprocess: Preprocess | None = Field(None, description="this model's input contract (as large_preprocess)")
    split: tuple[str, ...] | None = Field(None, description="module or graph-node names to cut this model after")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        if isinstance(data, str):
            name, sep, weights = data.partition("=")
            return {"name": name, "weights": weights} if sep and weights else {"name": name}
        return data

    def label(self) -> str:
        """``NAME`` or ``NAME=WEIGHTS``, as the command line gives it."""
        return f"{self.name}={self.weights}" if self.weights else self.name


class BuildConfig(Strict):
    """Everything that determines a bundle's bytes (with the package version)."""

    format_version: int = Field(1, description="version of this schema")
    large: str = Field(
        "demo-large-cnn", description="large model (prefix donor): registered name or path/file.py:Class"
    )
    small: str = Field(
        "demo-small-cnn", description="small model (suffix donor): registered name or path/file.py:Class"
    )
    large_weights: str | None = Field(
        None, description="state_dict file of the large model (demo models default to their shipped weights)"
    )
    small_weights: str | None = Field(
        None, description="state_dict file of the small model (demo models default to their shipped weights)"
    )
    allow_random_weights: bool = Field(
        False,
        exclude=True,
        description="build a torchvision, timm or user model that has no `*_weights` with the random weights it is "
        "created with (tests, demos, a factory that loads its own weights); without it such a model is refused",
    )
    input_shape: tuple[int, int, int] | None = Field(
        None, description="(C, H, W) for torchvision / user models; demo models take (1, 28, 28)"
    )
    num_classes: int | None = Field(None, ge=2, description="classifier width of torchvision / user models")
    large_preprocess: Preprocess | None = Field(
        None,
        description="the large model's input contract (default: its timm metadata, else pixels in [0, 1] as they "
        "are; for image files, the model's own policy: the demo models' is MNIST's)",
    )
    small_preprocess: Preprocess | None = Field(None, description="the small model's input contract (as above)")
    large_split: tuple[str, ...] | None = Field(
        None, description="module or graph-node names to cut the large model after (default: the split rule)"
    )
    small_split: tuple[str, ...] | None = Field(None, description="the same for the small model")
    max_blocks: int = Field(6, ge=2, description="most blocks the generic split rule makes of a traced model")
    dataset: str = Field(
        "mnist10k",
        description="registered name, folder:DIR, npz:FILE, idx:DIR (MNIST-style IDX files), a directory or a .npz",
    )
    splits: SplitSettings = Field(
        SplitSettings(), description="sizes of the calibration, validation and test splits (default: 500 / 500 / 1,000)"
    )
    bad_images: Literal["fail", "skip"] = Field(
        "fail",
        description="an image file of a folder dataset that cannot be decoded, or an image of an .npz holding a NaN "
        "or an infinity, stops the build, naming it (fail), or is left out of every split and counted (skip: each "
        "file is decoded, or the float array read, once more while loading to find them)",
    )
    seed: int = Field(0, ge=0, description="seed of the data splits, adapter initialisation and tuning")
    profile: str = Field("phone", description="device profile: built-in name or a YAML path")
    profiles: list[str] | None = Field(
        None,
        exclude=True,
        description="several device profiles, one bundle each from one CKA and one tuning (a fleet; instead of "
        "`profile`); each bundle records the single-profile config that builds it alone",
    )
    target: str | None = Field(None, description="export target: built-in name or a YAML path (default: the profile's)")
    cka_batch_size: int = Field(100, ge=4, description="minibatch of the streaming CKA over the calibration split")
    threads: int = Field(
        2, ge=1, description="torch CPU threads for CKA and tuning (results depend on it: float sums change order)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "cpu",
        description="where CKA and adapter tuning run: cpu (the tested path), cuda (a GPU torch sees), auto (cuda "
        "where torch sees one); results on a GPU may differ from the CPU's in the last bits",
    )
    max_memory: str | None = Field(
        None,
        exclude=True,
        description="memory the build may hold in data: prefix features for tuning stay in RAM while they fit it "
        "(e.g. 4GiB; default: a quarter of this machine's RAM); below what one batch needs is refused",
    )
    feature_store: Literal["auto", "ram", "mmap", "mmap-fp16", "recompute"] = Field(
        "auto",
        description="where prefix features for tuning live: auto (ram while they fit max_memory, else mmap, else "
        "recompute), ram, mmap (a float32 file: the same bytes as ram), mmap-fp16 (half the disk; features rounded "
        "to float16) or recompute (nothing stored: the prefix runs again at every step)",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        exclude=True,
        description="how the build's jobs run: in this process, or as Ray tasks (tuning per candidate, export and "
        "parity per profile) on $RAY_ADDRESS's cluster or a local instance; the bundles are the same bytes",
    )
    verbose: bool = Field(
        False,
        exclude=True,
        description="show the log lines of the tools a build drives (Ray's own; hidden otherwise)",
    )
    ray_timeout: float = Field(
        30.0,
        gt=0,
        exclude=True,
        description="executor ray: seconds to wait for the cluster at $RAY_ADDRESS to answer, and for a job that no "
        "live node can run, before the build stops in one line",
    )
    selection: Literal["pareto", "feasible"] = Field(
        "pareto", description="ship the Pareto front of accuracy vs latency, or every feasible variant"
    )
    selection_noise: float = Field(
        0.0,
        ge=0,
        description="standard errors of the validation accuracy within which one variant does not dominate another "
        "(0: exact Pareto front; a drop on a difference within 1 s.e. is flagged in its reason either way)",
    )
    strict_parity: bool = Field(
        False,
        description="any exported variant that fails the target's parity rule fails the build (exit 4); by default "
        "a failing stitched variant is dropped with its reason and the selection decided again without it (an "
        "anchor that fails, or nothing left, is an error either way)",
    )
    plan: PlanSettings = Field(PlanSettings(), description="how stitch candidates are chosen from the CKA matrix")
    tune: TuneSettings = Field(TuneSettings(), description="how each candidate's adapter is initialised and tuned")
    models: tuple[AnchorModel, ...] | None = Field(
        None,
        description="a family of 2 to 8 anchors instead of large / small: ordered by measured FLOPs, stitched along "
        "their neighbours into one bundle (two models are the large / small build)",
    )
    pairs: Literal["neighbours", "all"] = Field(
        "neighbours",
        description="which anchors of a family are stitched: each with its neighbours in FLOPs, or every two of them",
    )

    @model_serializer(mode="wrap")
    def _family_fields_when_used(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """``models`` and ``pairs`` appear only in a family's config (so a pair's bytes are those of the pair form),
        and the pair fields only in a pair's."""
        data: dict[str, object] = handler(self)
        for name in ("models", "pairs") if self.models is None else PAIR_FIELDS:
            data.pop(name, None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _one_way_to_name_models(cls, data: object) -> object:
        """``models`` or the pair fields, not both; at least two anchors, at most :data:`MAX_ANCHORS`, none twice."""
        if not isinstance(data, dict) or data.get("models") is None:
            return data
        both = [f for f in PAIR_FIELDS if data.get(f) is not None]
        if both:
            raise ValueError(f"give `models` (a family) or `large` / `small` (a pair), not both; also given: {both[0]}")
        given = data["models"]
        if isinstance(given, list | tuple) and not 2 <= len(given) <= MAX_ANCHORS:
            raise ValueError(f"models: give 2 to {MAX_ANCHORS} anchors; got {len(given)}")
        return data

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: tuple[AnchorModel, ...] | None) -> tuple[AnchorModel, ...] | None:
        seen: set[tuple[str, str | None]] = set()
        for m in models or ():
            if (m.name, m.weights) in seen:
                raise ValueError(f"{m.label()} is given twice; give each anchor once")
            seen.add((m.name, m.weights))
        return models

    @model_validator(mode="before")
    @classmethod
    def _one_way_to_name_profiles(cls, data: object) -> object:
        """``profile`` or ``profiles``, not both; ``profiles`` of one name is that ``profile``."""
        if not isinstance(data, dict) or data.get("profiles") is None:
            return data
        names = data["profiles"]
        if "profile" in data:
            raise ValueError("give `profile` (one) or `profiles` (a list), not both")
        if isinstance(names, list) and not names:
            raise ValueError("profiles: give at least one profile")
        if isinstance(names, list) and len(names) == 1:
            return {**{k: v for k, v in data.items() if k != "profiles"}, "profile": names[0]}
        return data

    @field_validator("max_memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value, "max_memory")
        return value

    def anchor_specs(self) -> tuple[AnchorModel, ...]:
        """The build's models as anchors: ``models`` for a family, else ``large`` then ``small``."""
        if self.models is not None:
            return self.models
        return tuple(
            AnchorModel(
                name=getattr(self, role),
                weights=getattr(self, f"{role}_weights"),
                preprocess=getattr(self, f"{role}_preprocess"),
                split=getattr(self, f"{role}_split"),
            )
            for role in ("large", "small")
        )

    def profile_names(self) -> list[str]:
        """The requested profiles, in the order given (one for a single-profile build)."""
        return list(self.profiles) if self.profiles else [self.profile]

    def for_profile(self, name: str) -> BuildConfig:
        """The single-profile config of ``name``: what a build of that profile alone is given."""
        return self.model_copy(update={"profile": name, "profiles": None})

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of this config."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


def load_build_config(path: Path | None, **overrides: object) -> BuildConfig:
    """Read a build config YAML (optional) and apply non-None ``overrides`` (from the command line).

    Raises:
        BadInputError: the file is missing, not YAML, or has unknown / invalid fields.
    """
    data: dict = {}
    if path is not None:
        if not path.is_file():
            raise BadInputError(f"build config {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise BadInputError(f"build config {path} is not UTF-8 text") from None
        except yaml.YAMLError:
            raise BadInputError(f"build config {path} is not valid YAML") from None
        if not isinstance(data, dict):
            raise BadInputError(f"build config {path}: expected a mapping of fields")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "profile" in given or "profiles" in given:  # the command line's profiles replace the file's
        data.pop("profile", None)
        data.pop("profiles", None)
    if "models" in given:  # the command line's family replaces the file's models, whichever form they take
        for name in PAIR_FIELDS:
            data.pop(name, None)
    elif given.keys() & set(PAIR_FIELDS):
        data.pop("models", None)
    data.update(given)
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"build config: {describe_validation_error(exc)}") from None
