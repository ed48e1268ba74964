"""Calibrate a profile's latency model to latencies measured on the device, and write the calibrated profile.

Measurements CSV (one row per variant, LiteRT ``benchmark_model``'s per-model summary in microseconds):

=========  ========  ==============================================================================
column     needed    meaning
=========  ========  ==============================================================================
variant    yes       variant id in the bundle's manifest (= its signature)
avg        yes       mean latency of one inference, us (``avg=`` of benchmark_model's summary line)
count      no        timed runs
first      no        first inference, us
curr       no        last inference, us
min, max   no        fastest / slowest run, us
std        no        standard deviation, us
p50        no        median, us; fitted instead of ``avg`` when present
p90..p99   no        percentiles (p90, p95, p99), us; the profile's percentile sets ``percentile_factor``
=========  ========  ==============================================================================

The per-op terms of each variant come from the bundle's ``manifest.json`` (``latency_terms``, read by the caller),
so calibration needs no model, no torch and no device here.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from restnet_compile._util.atomic import umask_mode
from restnet_compile.config.device import Profile, builtin_text, load_profile
from restnet_compile.cost.latency import Fit, OpTerms, fit_latency_model, roofline_ms
from restnet_compile.errors import BadInputError

REQUIRED = ("variant", "avg")
OPTIONAL = ("count", "first", "curr", "min", "max", "std", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class Measurement:
    """One variant's measured latency in milliseconds."""

    variant: str
    median_ms: float
    percentiles_ms: dict[int, float]


def read_measurements(path: Path) -> dict[str, Measurement]:
    """Parse a measurements CSV.

    Raises:
        BadInputError: missing file, missing or unknown column, non-numeric or non-positive value, duplicate or
            no rows; the message names the column or the row.
    """
    if not path.is_file():
        raise BadInputError(f"measurements file {path} does not exist")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for col in header:
            if col not in REQUIRED + OPTIONAL:
                raise BadInputError(
                    f"measurements {path}: unknown column {col!r}; valid columns: {', '.join(REQUIRED + OPTIONAL)}"
                )
        for col in REQUIRED:
            if col not in header:
                raise BadInputError(f"measurements {path}: missing column {col!r}")
        out: dict[str, Measurement] = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if None in raw:
                raise BadInputError(f"measurements {path}: row {line} has more fields than the header")
            vid = row["variant"]
            if not vid:
                raise BadInputError(f"measurements {path}: row {line}: empty variant")
            if vid in out:
                raise BadInputError(f"measurements {path}: row {line}: variant {vid!r} appears twice")
            values = {c: _number(row[c], c, line, path) for c in header if c != "variant" and row.get(c, "") != ""}
            if "avg" not in values:
                raise BadInputError(f"measurements {path}: row {line}: column 'avg' is empty")
            median = values.get("p50", values["avg"])
            pcts = {int(c[1:]): values[c] / 1e3 for c in ("p90", "p95", "p99") if c in values}
            out[vid] = Measurement(vid, median / 1e3, pcts)
    if not out:
        raise BadInputError(f"measurements {path}: no rows")
    return out


def _number(text: str, col: str, line: int, path: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInputError(f"measurements {path}: row {line}, column {col!r}: {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise BadInputError(f"measurements {path}: row {line}, column {col!r}: {text!r} must be a positive number")
    return value


def calibrate_profile(
    profile: Profile,
    measurements: dict[str, Measurement],
    terms: Mapping[str, OpTerms],
    source: str,
    invokes: Mapping[str, int] | None = None,
) -> tuple[Profile, Fit]:
    """Fit ``profile``'s latency model to ``measurements`` (``invokes``: interpreter calls per inference of each
    variant, 1 when not given).

    Raises:
        BadInputError: a measured variant is not in the bundle, or fewer than 3 variants were measured.
    """
    unknown = sorted(set(measurements) - {k for k, t in terms.items() if t})
    if unknown:
        raise BadInputError(
            f"measured variant {unknown[0]!r} is not in the bundle (or has no latency terms); "
            f"bundle variants: {', '.join(sorted(terms))}"
        )
    if len(measurements) < 3:
        raise BadInputError(f"calibration needs measurements of at least 3 variants, got {len(measurements)}")
    ratios = [
        m.percentiles_ms[profile.latency.percentile] / m.median_ms
        for m in measurements.values()
        if profile.latency.percentile in m.percentiles_ms
    ]
    factor = sorted(ratios)[len(ratios) // 2] if ratios else None
    fit = fit_latency_model(
        {k: terms[k] for k in measurements},
        {k: m.median_ms for k, m in measurements.items()},
        profile.latency_model,
        factor,
        invokes,
    )
    info: dict[str, str | int | float] = {
        "source": source,
        "variants": len(measurements),
        "mdape_before": round(fit.mdape_before, 4),
        "mdape_after": round(fit.mdape_after, 4),
    }
    model = fit.model.model_copy(update={"calibration": info})
    return profile.model_copy(update={"latency_model": model}), fit


def _duration(ms: float) -> str:
    return f"{ms * 1e3:.6g}us"


def profile_yaml(original: str, calibrated: Profile) -> str:
    """``original`` profile YAML with its latency model replaced by the calibrated one (validated)."""
    data = yaml.safe_load(original)
    lm = calibrated.latency_model
    data["latency_model"].update(
        {
            "peak_macs": f"{lm.peak_macs / 1e9:.6g}GOPS",
            "efficiency": float(lm.efficiency),
            "op_overhead": _duration(lm.op_overhead),
            "invoke_overhead": _duration(lm.invoke_overhead),
            "percentile_factor": float(lm.percentile_factor),
            "calibration": dict(lm.calibration or {}),
        }
    )
    text = f"# {calibrated.name}, latency model calibrated by `restnet-compile calibrate`\n" + yaml.safe_dump(
        data, sort_keys=False
    )
    Profile.model_validate(yaml.safe_load(text))  # what we write must load back
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place: all or nothing."""
    if path.is_dir():
        raise BadInputError(f"output {path} is a directory; give a file name such as {path / 'calibrated.yaml'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, umask_mode())
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def calibrate(
    profile_name: str,
    measurements_csv: Path,
    terms: Mapping[str, OpTerms],
    out: Path,
    invokes: Mapping[str, int] | None = None,
) -> tuple[Profile, Fit, dict[str, tuple[float, float]]]:
    """Read, fit and write the calibrated profile; nothing is written when any input is bad.

    Args:
        profile_name: Built-in profile to calibrate.
        measurements_csv: Measured latencies (see the module docstring).
        terms: Per variant of the bundle, its latency terms (the manifest's ``latency_terms``).
        out: Where the calibrated profile YAML goes.
        invokes: Interpreter calls per inference of each variant (the manifest's ``invokes``; 1 when not given).

    Returns:
        The calibrated profile, the fit, and per variant (predicted ms before, after) at the median.
    """
    profile = load_profile(profile_name)
    measured = read_measurements(measurements_csv)
    calibrated, fit = calibrate_profile(profile, measured, terms, measurements_csv.name, invokes)
    text = profile_yaml(builtin_text("profiles", profile_name), calibrated)
    write_atomic(out, text)
    calls = invokes or {}
    preds = {
        k: (
            roofline_ms(terms[k], profile.latency_model, invokes=calls.get(k, 1)),
            roofline_ms(terms[k], calibrated.latency_model, invokes=calls.get(k, 1)),
        )
        for k in measured
    }
    return calibrated, fit, preds
