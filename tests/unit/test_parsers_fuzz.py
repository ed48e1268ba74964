"""Property tests: the profile, target, build-config and unit parsers accept or refuse with one error type.

Whatever a YAML file holds -- arbitrary nested data, or a built-in profile / target / build config with one key
dropped, one unknown key added or one value replaced -- ``load_profile`` / ``load_target`` / ``load_build_config``
return a valid object or raise :class:`BadInputError` with a one-line message; the unit parsers return a positive
number or raise ``ValueError``. Files go to a fresh temporary directory per example (``tmp_path`` is not reset
between hypothesis examples).
"""

from __future__ import annotations

import math
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from restnet_compile._util.units import parse_bandwidth, parse_duration_ms, parse_rate, parse_size
from restnet_compile.config.build import BuildConfig, load_build_config
from restnet_compile.config.device import Profile, Target, builtin_names, load_profile, load_target
from restnet_compile.config.names import builtin_dir as _builtin_dir
from restnet_compile.errors import BadInputError

FUZZ = settings(deadline=None)  # examples per test: the loaded profile's (tests/conftest.py)
# No subnormal floats: a build in the same process (api.build -> set_determinism) turns on flush-to-zero, and
# hypothesis then refuses to draw them; parsing never sees one from YAML text anyway ("5e-324" is drawn as text).

# ------------------------------------------------------------------------------------------------ strategies

UNITS = ["B", "KB", "MB", "GB", "KiB", "MiB", "GiB", "kib", "us", "ms", "s", "GOPS", "TOPS", "GB/s", "KiB/s", "Hz", ""]
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.sampled_from(["0", "-1", ".5", "1e3", "1e400", "1e-400", "5e-324", "00", "1.", "nan", "inf"]),
)
unit_strings = st.builds(
    lambda n, space, u: f"{n}{space}{u}", numbers, st.sampled_from(["", " ", "\t"]), st.sampled_from(UNITS)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.text(max_size=20),
    unit_strings,
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _keys_of(*schemas: type) -> list[str]:
    keys: list[str] = []
    for schema in schemas:
        for name, info in schema.model_fields.items():
            keys.append(info.alias or name)
    return keys


def yaml_dicts(*schemas: type) -> st.SearchStrategy[dict]:
    """Mappings whose keys are often the schema's real field names, with arbitrary values."""
    keys = st.sampled_from(_keys_of(*schemas)) | st.text(max_size=12)
    return st.dictionaries(keys, yaml_values, max_size=12)


# ------------------------------------------------------------------------------------------------ helpers


def _write(text: str | bytes, suffix: str = ".yaml") -> Callable[[Callable[[Path], object]], object]:
    """Write ``text`` to a fresh temporary file and call the loader on its path."""

    def call(loader: Callable[[Path], object]) -> object:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"fuzz{suffix}"
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
            return loader(path)

    return call


def _accepts_or_refuses(loader: Callable[[Path], object], text: str | bytes, valid: type) -> BadInputError | None:
    """Run ``loader`` on a file holding ``text``: a ``valid`` object or one BadInputError; anything else fails."""
    try:
        obj = _write(text)(loader)
    except BadInputError as exc:
        assert str(exc).strip(), "empty error message"
        assert "\n" not in str(exc), f"error message is not one line: {exc!s}"
        return exc
    assert isinstance(obj, valid)
    return None


def _dump(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _builtin(kind: str, name: str) -> dict:
    return yaml.safe_load((_builtin_dir(kind) / f"{name}.yaml").read_text())


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indices) to a value inside ``node``."""
    out: list[tuple] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _get(node: object, path: tuple) -> object:
    for key in path:
        node = node[key]  # type: ignore[index]
    return node


MUTATIONS = ("drop", "add", "replace")
SCHEMAS: dict[str, type[BaseModel]] = {"profiles": Profile, "targets": Target, "build": BuildConfig}


def _field_names(schema: type[BaseModel]) -> set[str]:
    """Every field name (and alias) of ``schema`` and of the models nested in its fields."""
    names: set[str] = set()
    for name, info in schema.model_fields.items():
        names |= {name, info.alias or name}
        pending = [info.annotation]
        while pending:
            kind = pending.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= _field_names(kind)
            pending.extend(typing.get_args(kind))
    return names


@st.composite
def mutated(draw: st.DrawFn, kind: str, names: list[str]) -> tuple[str, dict, tuple]:
    """A built-in file with one key dropped, one unknown key added or one value replaced by arbitrary data."""
    data = _builtin(kind, draw(st.sampled_from(names))) if kind != "build" else _default_build_config()
    op = draw(st.sampled_from(MUTATIONS))
    paths = _paths(data)
    if op == "add":
        dict_paths = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
        where = draw(st.sampled_from(dict_paths))
        node = _get(data, where)
        known = _field_names(SCHEMAS[kind])  # a real optional field absent from this file is not "unknown"
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in node and k not in known))  # type: ignore[operator]
        node[key] = draw(yaml_values)  # type: ignore[index]
        return op, data, (*where, key)
    path = draw(st.sampled_from(paths))
    parent = _get(data, path[:-1])
    if op == "drop":
        del parent[path[-1]]  # type: ignore[union-attr]
    else:
        parent[path[-1]] = draw(yaml_values)  # type: ignore[index]
    return op, data, path


def _default_build_config() -> dict:
    data = BuildConfig().model_dump(mode="json")
    data["large_weights"] = "weights.pt"
    data["input_shape"] = [1, 28, 28]
    data["target"] = "tflite-int8"
    return data


PROFILES = builtin_names("profiles")
TARGETS = builtin_names("targets")

# ------------------------------------------------------------------------------------------------ profiles


def test_builtin_files_are_valid() -> None:
    """The mutation tests start from valid files: any refusal below is caused by the mutation."""
    for name in PROFILES:
        assert isinstance(load_profile(name), Profile)
    for name in TARGETS:
        assert isinstance(load_target(name), Target)
    assert isinstance(BuildConfig.model_validate(_default_build_config()), BuildConfig)


@FUZZ
@given(
    yaml_dicts(Profile, Profile.model_fields["latency"].annotation, Profile.model_fields["latency_model"].annotation)
)
def test_profile_from_arbitrary_mapping(data: dict) -> None:
    _accepts_or_refuses(load_profile, _dump(data), Profile)


@FUZZ
@given(yaml_values)
def test_profile_from_arbitrary_yaml_value(data: object) -> None:
    _accepts_or_refuses(load_profile, _dump(data), Profile)


@FUZZ
@given(st.text(max_size=200))
def test_profile_from_arbitrary_text(text: str) -> None:
    _accepts_or_refuses(load_profile, text, Profile)


@FUZZ
@given(mutated("profiles", PROFILES))
def test_profile_mutations(mutation: tuple[str, dict, tuple]) -> None:
    op, data, path = mutation
    exc = _accepts_or_refuses(load_profile, _dump(data), Profile)
    if op == "add":
        assert exc is not None, f"unknown field {path} was accepted"
        assert "unknown field" in str(exc), str(exc)


@settings(deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=64))
def test_profile_from_arbitrary_bytes(raw: bytes) -> None:
    _accepts_or_refuses(load_profile, b"name: " + raw, Profile)


# ------------------------------------------------------------------------------------------------ targets


@FUZZ
@given(yaml_dicts(Target, Target.model_fields["parity"].annotation))
def test_target_from_arbitrary_mapping(data: dict) -> None:
    _accepts_or_refuses(load_target, _dump(data), Target)


@FUZZ
@given(st.one_of(yaml_values, st.text(max_size=200)))
def test_target_from_arbitrary_yaml_or_text(data: object) -> None:
    _accepts_or_refuses(load_target, data if isinstance(data, str) else _dump(data), Target)


@FUZZ
@given(mutated("targets", TARGETS))
def test_target_mutations(mutation: tuple[str, dict, tuple]) -> None:
    op, data, path = mutation
    exc = _accepts_or_refuses(load_target, _dump(data), Target)
    if op == "add":
        assert exc is not None, f"unknown field {path} was accepted"
        assert "unknown field" in str(exc), str(exc)


# ------------------------------------------------------------------------------------------------ build config


@FUZZ
@given(
    st.one_of(
        yaml_dicts(
            BuildConfig, BuildConfig.model_fields["plan"].annotation, BuildConfig.model_fields["tune"].annotation
        ),
        yaml_values,
    )
)
def test_build_config_from_arbitrary_yaml(data: object) -> None:
    _accepts_or_refuses(lambda p: load_build_config(p), _dump(data), BuildConfig)


@FUZZ
@given(st.text(max_size=200))
def test_build_config_from_arbitrary_text(text: str) -> None:
    _accepts_or_refuses(lambda p: load_build_config(p), text, BuildConfig)


@FUZZ
@given(mutated("build", []))
def test_build_config_mutations(mutation: tuple[str, dict, tuple]) -> None:
    op, data, path = mutation
    exc = _accepts_or_refuses(lambda p: load_build_config(p), _dump(data), BuildConfig)
    if op == "add":
        assert exc is not None, f"unknown field {path} was accepted"
        assert "unknown field" in str(exc), str(exc)


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["profile", "target", "large", "small", "seed"]), yaml_values, max_size=5),
    yaml_dicts(BuildConfig),
)
def test_build_config_command_line_overrides(overrides: dict, data: dict) -> None:
    """The CLI's overrides (--profile, --target, --large, --small, --seed) on top of a file: same contract."""
    _accepts_or_refuses(lambda p: load_build_config(p, **overrides), _dump(data), BuildConfig)


# ------------------------------------------------------------------------------------------------ units

anything = st.one_of(unit_strings, st.text(max_size=30), scalars, st.lists(scalars, max_size=3))
PARSERS = {
    "size": parse_size,
    "duration": parse_duration_ms,
    "rate": parse_rate,
    "bandwidth": parse_bandwidth,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(value=anything)
def test_unit_parsers_return_positive_numbers_or_raise_value_error(name: str, value: object) -> None:
    try:
        got = PARSERS[name](value)  # type: ignore[arg-type]
    except ValueError as exc:
        assert str(exc).strip()
        return
    assert isinstance(got, int if name == "size" else float)
    assert math.isfinite(got)
    assert got >= 1 if name == "size" else got > 0


@FUZZ
@given(
    st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_subnormal=False),
    st.sampled_from(["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]),
)
def test_parse_size_roundtrips_valid_sizes(value: float, unit: str) -> None:
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]
    try:
        got = parse_size(f"{value!r}{unit}")
    except ValueError:
        assert value * scale < 1  # only sizes under one byte are refused
        return
    assert got == pytest.approx(math.ceil(value * scale - 1e-9), rel=1e-9, abs=1)
