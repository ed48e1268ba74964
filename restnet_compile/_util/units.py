"""Human units parsed in one place: sizes ("512KB", "4GiB") and durations ("20ms", "1.5s").

Sizes: B, KB/MB/GB (powers of 1000) and KiB/MiB/GiB (powers of 1024). Durations: us, ms, s.
Rates: "1.2GOPS" style operation rates and "25GB/s" bandwidths. Fractions: "10%" (zero allowed, below 100 %).
A bare number is refused: every limit must say its unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_SIZE = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_OPS = {"OPS": 1.0, "KOPS": 1e3, "MOPS": 1e6, "GOPS": 1e9, "TOPS": 1e12}
_EXAMPLE = {id(_SIZE): "512KB", id(_TIME_MS): "20ms", id(_OPS): "2GOPS"}
_NUM = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z/]+)\s*$")


def _split(text: str, what: str, units: Mapping[str, float]) -> tuple[float, float]:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string with a unit, e.g. {_example(units)!r}; got {text!r}")
    m = _NUM.match(text)
    if not m:
        raise ValueError(f"{what} {text!r} is not a number with a unit, e.g. {_example(units)!r}")
    value, unit = float(m.group(1)), m.group(2)
    by_upper = {u.upper(): u for u in units}
    if unit.upper() not in by_upper:
        valid = ", ".join(units)
        raise ValueError(f"{what} {text!r} has unknown unit {unit!r}; valid units: {valid}")
    scale = units[by_upper[unit.upper()]]
    if not math.isfinite(value * scale) or value * scale > 1e30:
        raise ValueError(f"{what} {text!r} is too large")
    if value <= 0 or value * scale <= 0:  # a tiny positive value can underflow to zero once scaled
        raise ValueError(f"{what} {text!r} must be greater than zero, e.g. {_example(units)!r}")
    return value, scale


def _example(units: Mapping[str, float]) -> str:
    return _EXAMPLE[id(units)]


def parse_size(text: str, what: str = "size") -> int:
    """Parse a size such as ``"512KB"`` or ``"4GiB"`` into bytes (fractions of a byte round up).

    Raises:
        ValueError: not a positive number followed by a known unit.
    """
    value, scale = _split(text, what, _SIZE)
    if value * scale < 1:
        raise ValueError(f"{what} {text!r} is less than one byte")
    return math.ceil(value * scale - 1e-9)  # a fractional byte count rounds up


def parse_duration_ms(text: str, what: str = "duration") -> float:
    """Parse a duration such as ``"20ms"``, ``"500us"`` or ``"1.5s"`` into milliseconds."""
    value, scale = _split(text, what, _TIME_MS)
    return value * scale


def parse_rate(text: str, what: str = "rate") -> float:
    """Parse an operation rate such as ``"2GOPS"`` into operations per second."""
    value, scale = _split(text, what, _OPS)
    return value * scale


def parse_bandwidth(text: str, what: str = "bandwidth") -> float:
    """Parse a bandwidth such as ``"25GB/s"`` into bytes per second."""
    if not isinstance(text, str) or not text.strip().endswith("/s"):
        raise ValueError(f"{what} {text!r} must be a size per second, e.g. '25GB/s'")
    return float(parse_size(text.strip()[:-2], what))


_PERCENT = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+)\s*%\s*$")


def parse_percent(text: str, what: str = "fraction") -> float:
    """Parse a percentage such as ``"10%"`` or ``"0%"`` into a fraction in ``[0, 1)``.

    Raises:
        ValueError: not a number followed by ``%``, negative, or 100 % and more.
    """
    m = _PERCENT.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{what} {text!r} must be a percentage, e.g. '10%'")
    value = float(m.group(1))
    if value < 0 or value >= 100:
        raise ValueError(f"{what} {text!r} must be at least 0% and less than 100%")
    return value / 100


def format_size(n_bytes: float) -> str:
    """Format bytes for people: 1500 -> '1.5 KB'; exact multiples of 1024 in binary units (524288 -> '512.0 KiB')."""
    binary = n_bytes >= 1024 and n_bytes % 1024 == 0 and n_bytes % 1000 != 0
    steps = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)) if binary else (("GB", 1e9), ("MB", 1e6), ("KB", 1e3))
    for unit, scale in steps:
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} B"
