"""The bundle manifest: the typed, versioned contract between the compiler and every device.

This module is the one place that writes a manifest (sealed with its own sha256) and reads one back (seal checked,
then every field checked against the types below). Standard library only, so the device runtime imports it without
numpy, torch or pydantic.

On disk the manifest is JSON with sorted keys, indent 2 and a trailing newline. A field marked *optional* is one that
earlier manifests of the same format version may lack: it is ``None`` here and absent from the JSON (never ``null``).
Every other field must be present (``null`` where its type allows ``None``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restnet_compile.bundle._codec import OPTIONAL, FieldError, decode, encode
from restnet_compile.bundle.segment_info import Segment

MANIFEST = "manifest.json"
REFERENCE_FILE = "reference.npz"  # stored inputs and the outputs recorded at build time (``verify``)
SEAL_FIELD = "manifest_sha256"  # the manifest's own sha256, computed with this field's value set to 64 zeros
# the version this code writes; 2 added the preprocessing contract (ModelInfo.preprocess, InputSpec.image); 3 added
# segments: model files holding block ranges, and variants that run as a chain of them (Segment, VariantEntry.chain)
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # the versions this code reads
_ZEROS = "0" * 64
_SEAL = re.compile(rb'"' + SEAL_FIELD.encode() + rb'": "([0-9a-f]{64})"')


class BundleError(ValueError):
    """The bundle is missing, altered, or asked for something it cannot do."""


@dataclass(frozen=True, kw_only=True)
class ProfileInfo:
    """The device profile the bundle was built for; ``latency_model`` is as the profile schema writes it."""

    name: str
    device_class: str = field(metadata={"json": "class"})  # a Python keyword
    soc: str
    runtime: str
    latency_budget_ms: float
    latency_percentile: int
    ram_bytes: int
    flash_bytes: int
    arena_bytes: int | None
    latency_model: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class SelectionInfo:
    """How the build chose what ships: ``pareto`` or ``feasible``, and the rule in one sentence."""

    mode: str
    min_latency_gain: float | None
    rule: str


@dataclass(frozen=True, kw_only=True)
class TargetInfo:
    """The export target: model format, dtype of weights and of inputs/outputs, operators kept in float."""

    name: str
    format: str
    dtype: str
    io_dtype: str
    float_ops: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """How an image file becomes the input: shorter side to ``resize``, centre ``crop``, then the input size.

    *Optional* (absent where they do not apply): ``invert`` (``light-background``: a picture whose border is lighter
    than mid-grey is inverted) and ``fit_object`` (the object is cropped, fitted in a square of this many pixels
    keeping its aspect and centred by its centre of mass in the input, as MNIST was made).
    """

    resize: int | None
    crop: int | None
    interpolation: str
    invert: str | None = field(default=None, metadata=OPTIONAL)
    fit_object: int | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """What every variant takes: ``shape`` is C x H x W whatever the ``layout`` the model files use.

    Every variant normalises its input itself (its prefix donor's ``mean`` / ``std`` are its graph's first op), so the
    device feeds pixels in ``range`` as they are. ``image`` is *optional* (format 1 lacks it).
    """

    layout: str
    shape: tuple[int, int, int]
    range: tuple[float, float]
    dtype: str
    image: ImageInfo | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class PreprocessInfo:
    """A donor's input normalisation inside its graph: ``(x - mean) / std`` per channel, and where it came from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """One donor model: registered name, sha256 of its weights file ("" when it has none), test accuracy, and its
    input normalisation (*optional*: format 1 lacks it)."""

    name: str
    weights_sha256: str
    test_accuracy: float
    preprocess: PreprocessInfo | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class AnchorInfo:
    """One anchor of a family: its id (``large``, ``middle``, ... ``small``), its letter in variant ids, the
    multiply-adds of one forward pass it was ordered by, and the model."""

    id: str
    tag: str
    flops: int
    model: ModelInfo


@dataclass(frozen=True, kw_only=True)
class Models:
    """The two donors: ``large`` (prefix donor by default) and ``small``; for a family, its largest and smallest
    anchor, and (*optional*, a family of three or more only) ``anchors``: all of them, largest first."""

    large: ModelInfo
    small: ModelInfo
    anchors: tuple[AnchorInfo, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class DataInfo:
    """The dataset, the size of each split (images), and what loading it said once (*optional* ``notes``: images
    converted to the models' channels, files left out, classes the data lacks; absent when there was nothing)."""

    dataset: str
    split_seed: int
    train: int
    calib: int
    val: int
    test: int
    notes: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class CandidateRule:
    """The stitch-candidate rule and its parameters."""

    rule: str
    depth_band: float
    min_suffix_blocks: int
    max_candidates: int
    order: str


@dataclass(frozen=True, kw_only=True)
class PairInfo:
    """One stitched pair of a family's anchors (``L-M``): the bigger and the smaller anchor's ids, their CKA matrix
    (rows: the bigger anchor's blocks) and (*optional*) why the rule rejected each pair of blocks when it found no
    candidate between them."""

    name: str
    big: str
    little: str
    cka: tuple[tuple[float, ...], ...]
    rejected: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class StitchingInfo:
    """Which model runs first, the candidate rule and the CKA matrix (rows: large blocks, columns: small).

    ``rejected`` (optional): present when the rule found no stitch candidate; why it rejected each pair of blocks,
    one line each (``L2-S0: adapter conv-bn-relu cannot resize ...``).

    ``pairs`` (*optional*, a family of three or more only): each stitched pair of anchors with its own CKA matrix;
    ``cka`` is then empty.
    """

    order: str
    rule: CandidateRule
    cka: tuple[tuple[float, ...], ...]
    rejected: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)
    pairs: tuple[PairInfo, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class StitchInfo:
    """Where a variant is stitched; an anchor model has only its ``description``."""

    description: str
    front_block: int | None = field(default=None, metadata=OPTIONAL)
    back_block: int | None = field(default=None, metadata=OPTIONAL)
    adapter: str | None = field(default=None, metadata=OPTIONAL)
    cka: float | None = field(default=None, metadata=OPTIONAL)
    ls_r2: float | None = field(default=None, metadata=OPTIONAL)
    front: str | None = field(default=None, metadata=OPTIONAL)
    back: str | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class TuneInfo:
    """What adapter tuning did, on the validation split."""

    val_accuracy_init: float
    val_accuracy: float
    epochs_run: int
    best_epoch: int


@dataclass(frozen=True, kw_only=True)
class Parity:
    """The exported model against PyTorch on the test split."""

    max_abs_diff: float
    top1_agreement: float
    accuracy_torch: float


@dataclass(frozen=True, kw_only=True)
class VariantEntry:
    """One variant: its stitch, costs, accuracies, the decision and, when shipped, its file and parity."""

    id: str
    kind: str
    stitch: StitchInfo
    tune: TuneInfo | None
    flops: int
    params: int
    uncounted_ops: dict[str, int]
    ram_bytes: int
    model_bytes: int
    flash_bytes: int
    latency_ms: float
    elementwise_ops: int
    ram_source: str
    arena_bytes: int | None
    arena_bytes_measured: int | None
    graph_ops: tuple[str, ...] | None
    latency_terms: tuple[tuple[int, ...], ...]
    accuracy_fp32: float
    val_accuracy_fp32: float
    feasible: bool
    selected: bool
    reasons: tuple[str, ...]
    file: str | None
    signature: str | None
    accuracy_deployed: float | None
    parity: Parity | None
    chain: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)

    @property
    def runs_as_chain(self) -> bool:
        """Whether the runtime runs it segment by segment, one call each (no signature of its own runs it)."""
        return bool(self.chain) and not self.signature


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything a device, a CI job or a person needs to trust and use a bundle.

    ``config`` is the build config as its schema writes it and ``tool_versions`` maps tool to version; both are
    plain JSON values. ``files`` maps every bundle file but the manifest to its sha256; ``manifest_sha256`` is the
    seal of the file the manifest was read from (None for a manifest not yet written).
    """

    format_version: int
    config: dict[str, Any]
    config_hash: str
    seed: int
    tool_versions: dict[str, str]
    profile: ProfileInfo
    selection: SelectionInfo | None = field(default=None, metadata=OPTIONAL)
    target: TargetInfo
    input: InputSpec
    models: Models
    data: DataInfo
    stitching: StitchingInfo
    variants: tuple[VariantEntry, ...]
    segments: tuple[Segment, ...] | None = field(default=None, metadata=OPTIONAL)
    files: dict[str, str]
    bundle_model_bytes: int | None = field(default=None, metadata=OPTIONAL)
    manifest_sha256: str | None = field(default=None, metadata=OPTIONAL)

    def shipped(self) -> list[VariantEntry]:
        """The selected variants, in manifest order."""
        return [v for v in self.variants if v.selected]

    def variant(self, variant_id: str) -> VariantEntry:
        """The variant called ``variant_id``.

        Raises:
            BundleError: no such variant; the message lists the valid ones.
        """
        for v in self.variants:
            if v.id == variant_id:
                return v
        raise BundleError(f"unknown variant {variant_id!r}; valid choices: {', '.join(v.id for v in self.variants)}")

    def segment(self, segment_id: str) -> Segment:
        """The segment called ``segment_id``.

        Raises:
            BundleError: the manifest has no such segment; the message lists the valid ones.
        """
        for s in self.segments or ():
            if s.id == segment_id:
                return s
        valid = ", ".join(s.id for s in self.segments or ()) or "none"
        raise BundleError(f"unknown segment {segment_id!r}; valid choices: {valid}")

    def chain(self, variant_id: str) -> list[Segment]:
        """The segments variant ``variant_id`` runs, in order (empty for a variant stored as one graph).

        Raises:
            BundleError: the chain names a segment the manifest lacks.
        """
        v = self.variant(variant_id)
        try:
            return [self.segment(s) for s in v.chain or ()]
        except BundleError as exc:
            raise BundleError(f"variant {variant_id}: {exc}") from None

    def latency_terms(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Per variant, the (MACs, bytes moved[, output elements]) of each dispatched op: what calibration fits."""
        return {v.id: v.latency_terms for v in self.variants}

    def signatures_by_file(self) -> dict[str, list[str]]:
        """Model file -> signatures of the exported variants it holds, in manifest order."""
        out: dict[str, list[str]] = {}
        for v in self.variants:
            if v.file is not None and v.signature is not None:
                out.setdefault(v.file, []).append(v.signature)
        return out

    def with_parity(self, parity: Mapping[str, Parity], accuracy_deployed: Mapping[str, float]) -> Manifest:
        """A copy recording each checked variant's parity with PyTorch and its deployed accuracy."""
        variants = tuple(
            dataclasses.replace(v, parity=parity[v.id], accuracy_deployed=accuracy_deployed[v.id])
            if v.id in parity
            else v
            for v in self.variants
        )
        return dataclasses.replace(self, variants=variants, manifest_sha256=None)

    def with_model_bytes(self, bundle_model_bytes: int) -> Manifest:
        """A copy recording the bytes of the bundle's model files together."""
        return dataclasses.replace(self, bundle_model_bytes=bundle_model_bytes, manifest_sha256=None)

    def with_files(self, files: Mapping[str, str]) -> Manifest:
        """A copy recording the sha256 of every bundle file (name relative to the bundle -> hex digest)."""
        return dataclasses.replace(self, files=dict(files), manifest_sha256=None)

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON values (the seal included when the manifest was read from a file)."""
        data: dict[str, Any] = encode(self)
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], where: str = MANIFEST) -> Manifest:
        """Check ``data`` field by field and build the manifest.

        Raises:
            BundleError: a format version this code does not read, or a missing, unknown, null or mistyped field;
                the message names the field.
        """
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            raise BundleError(
                f"{where}: manifest format_version {version!r} is not one this restnet-compile reads ({readable})"
            )
        try:
            manifest: Manifest = decode(cls, data)
            return manifest
        except FieldError as exc:
            raise BundleError(f"{where}: manifest field {exc}") from None


def seal(manifest: Manifest) -> bytes:
    """The manifest as byte-stable JSON (sorted keys, indent 2, trailing newline) carrying its own sha256.

    The seal is the sha256 of the file's exact bytes with the seal's value replaced by 64 zeros, so any change to
    any byte of the file (values, keys, whitespace or the seal itself) is detected by :func:`read_manifest`.
    """
    text = json.dumps({**manifest.to_json_dict(), SEAL_FIELD: _ZEROS}, indent=2, sort_keys=True) + "\n"
    blank = f'"{SEAL_FIELD}": "{_ZEROS}"'.encode()
    raw = text.encode()
    digest = hashlib.sha256(raw).hexdigest()
    return raw.replace(blank, f'"{SEAL_FIELD}": "{digest}"'.encode(), 1)


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` sealed (see :func:`seal`)."""
    path.write_bytes(seal(manifest))


def read_manifest(raw: bytes, where: str = MANIFEST) -> Manifest:
    """Check the seal of manifest bytes (see :func:`seal`), then parse and check every field.

    Raises:
        BundleError: the seal is missing or does not match the bytes, the JSON is invalid, or a field is missing,
            unknown or mistyped.
    """
    seals = list(_SEAL.finditer(raw))
    if len(seals) != 1:
        raise BundleError(f"{where}: no valid {SEAL_FIELD} seal: the manifest was altered or is not a bundle manifest")
    found = seals[0]
    blanked = raw[: found.start(1)] + _ZEROS.encode() + raw[found.end(1) :]
    if hashlib.sha256(blanked).hexdigest() != found.group(1).decode():
        raise BundleError(f"{where}: the manifest does not match its own {SEAL_FIELD}: it was altered")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # only reachable with a recomputed seal
        raise BundleError(f"{where}: invalid JSON: {exc}") from None
    return Manifest.from_json_dict(data, where)


def load_manifest(bundle_dir: Path) -> Manifest:
    """The checked manifest of the bundle directory ``bundle_dir``.

    Raises:
        BundleError: no readable manifest there, or it fails :func:`read_manifest`.
    """
    path = bundle_dir / MANIFEST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{bundle_dir}: not a bundle: cannot read {MANIFEST} ({exc.strerror})") from None
    return read_manifest(raw, str(path))
