"""The build configuration: which models, which data, how to stitch and tune, for which profile and target."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from restnet_compile.config.device import Strict, describe_validation_error
from restnet_compile.errors import BadInputError


class PlanSettings(Strict):
    """Candidate rule parameters (see ``restnet_compile.stitching.plan``)."""

    depth_band: float = Field(0.35, gt=0, le=1)
    min_suffix_blocks: int = Field(1, ge=1)
    max_candidates: int = Field(8, ge=1)
    order: Literal["large-small", "small-large"] = Field(
        "large-small", description="large prefix -> small suffix (ReStNet) or small prefix -> large suffix (SN-Net)"
    )


class TuneSettings(Strict):
    """Adapter fine-tuning hyper-parameters (see ``restnet_compile.stitching.tuning.loop``)."""

    epochs: int = Field(20, ge=0)
    lr: float = Field(2e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    distill_weight: float = Field(1.0, ge=0, le=1)
    temperature: float = Field(4.0, gt=0)
    patience: int = Field(20, ge=1)
    adapter: str = Field(
        "conv-bn-relu", description="map -> map adapter (auto: conv1x1); see restnet_compile.stitching.adapters"
    )
    recipe: str = Field("ls+feature-match+distill", description="tuning recipe; see stitching.tuning.recipes")
    match_epochs: int = Field(3, ge=0)
    match_lr: float = Field(3e-3, gt=0)
    augment: str = Field("none", description="augmentation of the cached prefix features; see stitch.finetune")
    schedule: str = Field("cosine", description="learning-rate schedule; see restnet_compile.stitching.tuning.loop")
    weight_decay: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema: float = Field(0.0, ge=0, lt=1, description="per-step decay of the adapter's weight average (0: off)")

    @field_validator("augment", "schedule", "adapter", "recipe")
    @classmethod
    def _registered_name(cls, name: str, info: ValidationInfo) -> str:
        """Each named choice must be registered; ``adapter`` also takes ``auto`` (the planned adapter)."""
        from restnet_compile.stitching.adapters import ADAPTERS
        from restnet_compile.stitching.tuning.loop import AUGMENTS, SCHEDULES
        from restnet_compile.stitching.tuning.recipes import RECIPES

        field = info.field_name or ""
        registry = {"augment": AUGMENTS, "schedule": SCHEDULES, "adapter": ADAPTERS, "recipe": RECIPES}[field]
        valid = (["auto"] if field == "adapter" else []) + list(registry.names())
        if name not in valid:
            raise ValueError(f"unknown {field} {name!r}; valid choices: {', '.join(valid)}")
        return name


class BuildConfig(Strict):
    """Everything that determines a bundle's bytes (with the package version)."""

    format_version: int = 1
    large: str = "demo-large-cnn"
    small: str = "demo-small-cnn"
    large_weights: str | None = None
    small_weights: str | None = None
    input_shape: tuple[int, int, int] | None = Field(
        None, description="(C, H, W) for torchvision / user models; demo models take (1, 28, 28)"
    )
    num_classes: int | None = Field(None, ge=2, description="classifier width of torchvision / user models")
    dataset: str = Field("mnist5k", description="registered name, folder:DIR, npz:FILE, a directory or a .npz")
    seed: int = Field(0, ge=0)
    profile: str = "phone"
    target: str | None = Field(None, description="defaults to the profile's target")
    cka_batch_size: int = Field(100, ge=4)
    threads: int = Field(
        2, ge=1, description="torch CPU threads for CKA and tuning (results depend on it: float sums change order)"
    )
    selection: Literal["pareto", "feasible"] = Field(
        "pareto", description="ship the Pareto front of accuracy vs latency, or every feasible variant"
    )
    selection_noise: float = Field(
        1.0,
        ge=0,
        description="standard errors of the validation accuracy within which one variant does not dominate another "
        "(0: exact Pareto front)",
    )
    plan: PlanSettings = PlanSettings()
    tune: TuneSettings = TuneSettings()

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
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"build config: {describe_validation_error(exc)}") from None
