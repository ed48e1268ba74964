"""Schemas for device profiles and export targets (YAML, ``extra="forbid"``, human units); the build config is
:mod:`restnet_compile.config.build`.

A profile says what a device can afford; a target says which file to emit. Both are addressed by built-in name
(``builtin/profiles/*.yaml``, ``builtin/targets/*.yaml`` shipped inside the package) or by a path to the user's own
YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from restnet_compile._util.units import parse_bandwidth, parse_duration_ms, parse_percent, parse_rate, parse_size
from restnet_compile.config.names import builtin_names, resolve
from restnet_compile.errors import BadInputError

FORMAT_VERSION = 1
DType = Literal["int8", "fp16", "fp32"]


def _unit(parser, what: str):
    def convert(value: object) -> object:
        return parser(value, what) if isinstance(value, str) else _refuse_bare(value, what)

    return BeforeValidator(convert)


def _refuse_bare(value: object, what: str) -> object:
    raise ValueError(f"{what} needs a unit, e.g. '512KB' or '20ms'; got {value!r}")


Bytes = Annotated[int, _unit(parse_size, "size")]
Millis = Annotated[float, _unit(parse_duration_ms, "duration")]
OpsPerSecond = Annotated[float, _unit(parse_rate, "rate")]
BytesPerSecond = Annotated[float, _unit(parse_bandwidth, "bandwidth")]
Percent = Annotated[float, BeforeValidator(lambda v: parse_percent(v, "fraction"))]


class Strict(BaseModel):
    """Base for every schema: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LatencyLimit(Strict):
    """A latency budget at a percentile of the run-time distribution."""

    budget: Millis
    percentile: int = Field(90, ge=1, le=100)


class LatencyModel(Strict):
    """Roofline latency model: per op ``max(MACs / (peak * efficiency), bytes / bandwidth) + op_overhead``."""

    peak_macs: OpsPerSecond = Field(description="peak multiply-accumulates per second for the profile's dtype")
    efficiency: float = Field(gt=0, le=1, description="fraction of peak that real kernels reach")
    mem_bandwidth: BytesPerSecond
    op_overhead: Millis = Field(description="fixed cost per dispatched op")
    invoke_overhead: Millis = Field(description="fixed cost per inference")
    percentile_factor: float = Field(1.1, ge=1, description="p-th percentile / median of run time")
    parallel_outputs: int | None = Field(
        None,
        gt=0,
        description="output elements one op needs to fill the device (GPUs); an op with fewer runs at that "
        "fraction of `efficiency`; None: every op fills it (CPUs, MCUs)",
    )
    calibration: dict[str, str | int | float] | None = Field(
        None, description="how `restnet-compile calibrate` fitted this model (source, variants, errors)"
    )


class SelectionRule(Strict):
    """How a profile thins the Pareto front: an epsilon-Pareto rule (see ``restnet_compile.selection.rule``)."""

    min_latency_gain: Percent = Field(
        0.0,
        description="a less accurate variant ships only when it is at least this much faster than the next more "
        "accurate shipped variant; 0% ships the whole Pareto front",
    )


class Profile(Strict):
    """What a device can afford."""

    format_version: Literal[1]
    name: str
    device_class: Literal["mcu", "phone", "jetson", "host"] = Field(alias="class")
    soc: str
    arch: str
    runtime: str
    target: str = Field(description="default export target")
    ram: Bytes = Field(description="memory available to the model: tensor arena on an MCU")
    flash: Bytes = Field(description="storage available to the model file(s)")
    runtime_flash: Bytes = Field(description="flash taken by the runtime's own code")
    runtime_ram: Bytes = Field(description="RAM taken by the runtime itself, beside tensors")
    weights_in_ram: bool = Field(description="whether the runtime copies weights into RAM")
    latency: LatencyLimit
    threads: int = Field(1, ge=1)
    dtypes: list[DType] = Field(min_length=1)
    arena: Bytes | None = Field(None, description="MCU: tensor arena the firmware reserves for the model")
    ops_allow: list[str] | None = Field(
        None, min_length=1, description="TFLite builtin operators the device's runtime has kernels for (None: any)"
    )
    latency_model: LatencyModel
    selection: SelectionRule = SelectionRule()

    @model_validator(mode="after")
    def _limits_leave_room(self) -> Profile:
        if self.runtime_ram >= self.ram:
            raise ValueError("runtime_ram must be less than ram: nothing would be left for the model")
        if self.runtime_flash >= self.flash:
            raise ValueError("runtime_flash must be less than flash: nothing would be left for the model")
        if self.arena is not None and self.arena > self.ram:
            raise ValueError("arena must not be larger than ram")
        return self


class Parity(Strict):
    """How close an exported model must stay to PyTorch."""

    max_abs_diff: float | None = Field(None, gt=0, description="fp targets: largest |logit difference|")
    max_rel_diff: float | None = Field(
        None,
        ge=0,
        description="fp targets: added to max_abs_diff per unit of the largest |PyTorch logit| (float rounding grows "
        "with the logits' scale)",
    )
    min_top1_agreement: float | None = Field(None, gt=0, le=1, description="quantized targets")
    max_accuracy_drop: float | None = Field(None, ge=0, le=1, description="quantized targets, absolute")


class Target(Strict):
    """Which file(s) a build emits."""

    format_version: Literal[1]
    name: str
    exporter: str
    dtype: DType
    io_dtype: DType
    description: str
    calibration_samples: int = Field(200, ge=1)
    ops_allow: list[str] | None = Field(None, description="operators the target runtime supports (None: any)")
    tensorrt: bool = Field(False, description="also write trtexec.sh, the engine build command for the device")
    segments: bool = Field(
        False,
        description="tflite exporter: one file per block range, each variant a chain of them (tflm always does)",
    )
    segment_cuts: Literal["shared", "every-block"] = Field(
        "shared",
        description="segment targets: cut donors only where a variant enters or leaves them (shared), or between "
        "every two blocks (every-block: longer chains, small patches for variants added later)",
    )
    segment_file: Literal["each", "one"] = Field(
        "each",
        description="segment targets: one file per segment (each: a patch carries only new segments; TFLite Micro "
        "needs it), or every segment a signature of one file (one: the smallest bundle, LiteRT only)",
    )
    float_ops: list[str] = Field(
        [], description="int8 TFLite only: operators kept in float (mixed precision), e.g. BATCH_MATMUL, SOFTMAX"
    )
    parity: Parity

    @model_validator(mode="after")
    def _segment_file_fits(self) -> Target:
        if self.segment_file == "one" and self.exporter == "tflm":
            raise ValueError("segment_file one is for LiteRT: TFLite Micro runs one subgraph per model; use each")
        return self


def _load(kind: Literal["profiles", "targets"], name_or_path: str | Path, schema: type[Strict]) -> Strict:
    path = resolve(kind, name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInputError(f"{kind[:-1]} {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInputError(f"{kind[:-1]} {path}:{where} is not valid YAML") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{kind[:-1]} {path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"{kind[:-1]} {path}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first bad field and what is wrong with it."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown field {field!r}"
    if err["type"] == "missing":
        return f"missing field {field!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"field {field!r}: {msg}" if err["loc"] else msg


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a device profile by built-in name or YAML path.

    Raises:
        BadInputError: unknown name, missing file, invalid YAML or invalid fields.
    """
    return _load("profiles", name_or_path, Profile)  # type: ignore[return-value]


def load_target(name_or_path: str | Path) -> Target:
    """Load an export target by built-in name or YAML path."""
    return _load("targets", name_or_path, Target)  # type: ignore[return-value]


def builtin_text(kind: Literal["profiles", "targets"], name: str) -> str:
    """The YAML text of a built-in profile or target (or of a user's file)."""
    return resolve(kind, name).read_text()


def list_profiles() -> list[Profile]:
    """Every built-in profile."""
    return [load_profile(n) for n in builtin_names("profiles")]


def list_targets() -> list[Target]:
    """Every built-in target."""
    return [load_target(n) for n in builtin_names("targets")]


def show_profile(name_or_path: str) -> str:
    """The YAML text of one profile, after validating it."""
    load_profile(name_or_path)
    return builtin_text("profiles", name_or_path)


def show_target(name_or_path: str) -> str:
    """The YAML text of one target, after validating it."""
    load_target(name_or_path)
    return builtin_text("targets", name_or_path)
