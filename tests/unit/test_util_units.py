"""Unit parsing: sizes, durations, rates, bandwidths and size formatting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restnet_compile._util.units import format_size, parse_bandwidth, parse_duration_ms, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512KB", 512_000),
        ("512KiB", 524_288),
        ("1B", 1),
        ("2MB", 2_000_000),
        ("2MiB", 2 * 1024**2),
        ("1GB", 10**9),
        ("4GiB", 4 * 1024**3),
        ("1.5KB", 1500),
        (" 512 KB ", 512_000),
        ("512kib", 524_288),
        ("1e3B", 1000),
    ],
)
def test_parse_size_valid(text: str, expected: int) -> None:
    got = parse_size(text)
    assert got == expected
    assert isinstance(got, int)


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [("20ms", 20.0), ("500us", 0.5), ("1.5s", 1500.0), ("2s", 2000.0), ("0.25ms", 0.25)],
)
def test_parse_duration_ms_valid(text: str, expected_ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(expected_ms)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2GOPS", 2e9), ("0.96GOPS", 0.96e9), ("5TOPS", 5e12), ("10MOPS", 1e7), ("3KOPS", 3e3), ("7OPS", 7.0)],
)
def test_parse_rate_valid(text: str, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("25GB/s", 25e9), ("1.9GB/s", 1.9e9), ("10MiB/s", 10 * 1024**2), (" 68GB/s ", 68e9)],
)
def test_parse_bandwidth_valid(text: str, expected: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("parser", "text", "needle"),
    [
        (parse_size, "512", "'512'"),  # bare number: the value is named
        (parse_size, "0KB", "greater than zero"),
        (parse_size, "-5KB", "'-5KB'"),
        (parse_size, "512XB", "'XB'"),  # unknown unit is named
        (parse_size, "KB", "'KB'"),
        (parse_size, "", "''"),
        (parse_duration_ms, "20", "'20'"),
        (parse_duration_ms, "0ms", "greater than zero"),
        (parse_duration_ms, "-1s", "'-1s'"),
        (parse_duration_ms, "20min", "'min'"),
        (parse_duration_ms, "20KB", "'KB'"),  # a size is not a duration
        (parse_rate, "2", "'2'"),
        (parse_rate, "2GFLOPS", "'GFLOPS'"),
        (parse_rate, "0GOPS", "greater than zero"),
        (parse_bandwidth, "25GB", "'25GB'"),  # missing /s
        (parse_bandwidth, "25/s", "'25'"),
        (parse_bandwidth, "25XB/s", "'XB'"),
        (parse_bandwidth, "0GB/s", "greater than zero"),
    ],
)
def test_rejects_with_message_naming_value_or_unit(parser, text: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        parser(text)
    assert needle in str(info.value)


def test_unknown_unit_lists_valid_units() -> None:
    with pytest.raises(ValueError, match=r"valid units: B, KB, MB, GB, KiB, MiB, GiB"):
        parse_size("3TB")
    with pytest.raises(ValueError, match=r"valid units: us, ms, s"):
        parse_duration_ms("3h")


@pytest.mark.parametrize("value", [512, 20.0, None, b"512KB", ["512KB"], True])
@pytest.mark.parametrize("parser", [parse_size, parse_duration_ms, parse_rate, parse_bandwidth])
def test_rejects_non_string(parser, value: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        parser(value)
    assert repr(value) in str(info.value)


def test_what_label_appears_in_message() -> None:
    with pytest.raises(ValueError, match=r"^ram "):
        parse_size("12", "ram")
    with pytest.raises(ValueError, match=r"^latency budget "):
        parse_duration_ms("12", "latency budget")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1500, "1.5 KB"),
        (512_000, "512.0 KB"),
        (524_288, "512.0 KiB"),
        (2 * 1024**2, "2.0 MiB"),
        (2_500_000, "2.5 MB"),
        (10**9, "1.0 GB"),
        (1024_000, "1.0 MB"),  # multiple of both 1000 and 1024: decimal units win
    ],
)
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected


@pytest.mark.parametrize("text", ["512KB", "512KiB", "2MiB", "1GB", "100KB", "16KB"])
def test_format_size_round_trips_parse_size(text: str) -> None:
    n = parse_size(text)
    shown = format_size(n).replace(" ", "")
    assert parse_size(shown) == n


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_parse_size_any_text_is_positive_int_or_value_error(text: str) -> None:
    try:
        n = parse_size(text)
    except ValueError:
        return
    assert isinstance(n, int)
    assert n > 0


_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from(sorted(_UNITS)),
)
def test_parse_size_number_with_unit_property(value: float, unit: str) -> None:
    n = parse_size(f"{value!r}{unit}")
    assert isinstance(n, int)
    assert n > 0
    assert value * _UNITS[unit] - 1e-6 <= n < value * _UNITS[unit] + 1


# Regression tests: sub-byte and overflowing sizes used to load as 0 / raise OverflowError.
def test_parse_size_refuses_sizes_that_round_to_zero() -> None:
    with pytest.raises(ValueError):
        parse_size("0.4B")


def test_parse_size_refuses_overflowing_sizes_with_value_error() -> None:
    with pytest.raises(ValueError):
        parse_size("1e400B")
