"""Device profiles and export targets: built-ins, YAML paths and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from restnet_compile.config.device import (
    Profile,
    Target,
    builtin_names,
    builtin_text,
    load_profile,
    load_target,
)
from restnet_compile.errors import EXIT_BAD_INPUT, BadInputError

PROFILES = builtin_names("profiles")
TARGETS = builtin_names("targets")


def test_builtin_names_are_the_shipped_files() -> None:
    assert PROFILES == ["host", "jetson", "mcu", "phone"]
    assert TARGETS == [
        "onnx-fp16",
        "onnx-fp32",
        "onnx-int8",
        "tflite-fp16",
        "tflite-fp32",
        "tflite-int8",
        "tflite-int8-segments",
        "tflm-int8",
    ]


@pytest.mark.parametrize("name", PROFILES)
def test_every_builtin_profile_loads(name: str) -> None:
    p = load_profile(name)
    assert isinstance(p, Profile)
    assert p.name == name
    assert p.device_class == name  # one built-in profile per device class
    assert p.ram > 0 and p.flash > 0
    assert p.runtime_flash < p.flash
    assert p.latency.budget > 0
    assert 1 <= p.latency.percentile <= 100
    assert p.latency_model.peak_macs > 0
    assert 0 < p.latency_model.efficiency <= 1
    assert p.target in TARGETS
    assert load_target(p.target).dtype in p.dtypes  # every profile's default target is runnable on it


@pytest.mark.parametrize("name", TARGETS)
def test_every_builtin_target_loads(name: str) -> None:
    t = load_target(name)
    assert isinstance(t, Target)
    assert t.name == name
    assert t.calibration_samples >= 1


def test_mcu_profile_values() -> None:
    p = load_profile("mcu")
    assert p.ram < 1_000_000
    assert p.ram == 512 * 1024
    assert p.flash == 2 * 1024**2
    assert p.dtypes == ["int8"]
    assert p.weights_in_ram is False
    assert p.latency.budget == pytest.approx(90.0)
    assert p.latency_model.op_overhead == pytest.approx(0.02)  # 20us in ms
    assert p.latency_model.mem_bandwidth == pytest.approx(1.9e9)


def test_target_parity_fields() -> None:
    assert load_target("onnx-fp32").parity.max_abs_diff == pytest.approx(1e-4)
    int8 = load_target("tflite-int8")
    assert int8.dtype == "int8"
    assert int8.parity.min_top1_agreement == pytest.approx(0.98)


@pytest.mark.parametrize(("loader", "kind"), [(load_profile, "profiles"), (load_target, "targets")])
def test_unknown_name_lists_valid_choices(loader, kind: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError) as info:
        loader("nope")
    msg = str(info.value)
    assert "'nope'" in msg
    assert "valid choices" in msg
    for name in builtin_names(kind):  # type: ignore[arg-type]
        assert name in msg
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_missing_yaml_path(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        load_profile(tmp_path / "absent.yaml")


def _copy(tmp_path: Path, kind: str, name: str, edit=lambda s: s) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / f"my-{name}.yaml"
    path.write_text(edit(builtin_text(kind, name)))  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("name", PROFILES)
def test_profile_yaml_path_equals_builtin(tmp_path: Path, name: str) -> None:
    path = _copy(tmp_path, "profiles", name)
    assert load_profile(path) == load_profile(name)
    assert load_profile(str(path)) == load_profile(name)


def test_target_yaml_path_equals_builtin(tmp_path: Path) -> None:
    path = _copy(tmp_path, "targets", "tflite-int8")
    assert load_target(path) == load_target("tflite-int8")


def test_user_profile_changes_are_read(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("ram: 512KiB", "ram: 1MiB"))
    assert load_profile(path).ram == 1024**2


def test_unknown_field_is_named(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s + "colour: red\n")
    with pytest.raises(BadInputError, match=r"unknown field 'colour'"):
        load_profile(path)


def test_unknown_nested_field_is_named(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "phone", lambda s: s.replace("  percentile: 90\n", "  percentile: 90\n  p: 1\n"))
    with pytest.raises(BadInputError, match=r"unknown field 'latency\.p'"):
        load_profile(path)


def test_unknown_target_field_is_named(tmp_path: Path) -> None:
    path = _copy(tmp_path, "targets", "onnx-fp32", lambda s: s + "opset: 17\n")
    with pytest.raises(BadInputError, match=r"unknown field 'opset'"):
        load_target(path)


def test_bare_number_limit_names_the_field(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("ram: 512KiB", "ram: 512"))
    with pytest.raises(BadInputError) as info:
        load_profile(path)
    msg = str(info.value)
    assert "'ram'" in msg
    assert "unit" in msg
    assert "512" in msg


def test_bare_number_budget_names_the_nested_field(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("budget: 90ms", "budget: 90"))
    with pytest.raises(BadInputError, match=r"'latency\.budget'"):
        load_profile(path)


def test_bad_unit_names_the_field(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("flash: 2MiB", "flash: 2 parsecs"))
    with pytest.raises(BadInputError, match=r"'flash'"):
        load_profile(path)


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("soc: STM32H743", "#soc: STM32H743"))
    with pytest.raises(BadInputError, match=r"missing field 'soc'"):
        load_profile(path)


def test_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path, "profiles", "mcu", lambda s: s.replace("dtypes: [int8]", "dtypes: [int4]"))
    with pytest.raises(BadInputError, match=r"dtypes"):
        load_profile(path)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: mcu\nram: [512KiB\nflash: {\n")
    with pytest.raises(BadInputError, match="not valid YAML"):
        load_profile(path)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- mcu\n- phone\n")
    with pytest.raises(BadInputError, match="expected a mapping"):
        load_profile(path)


def test_profiles_are_frozen() -> None:
    p = load_profile("mcu")
    with pytest.raises(ValueError):
        p.ram = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", PROFILES)
def test_the_light_reader_lists_a_profile_as_the_schema_reads_it(name: str) -> None:
    from restnet_compile._util.units import format_size
    from restnet_compile.cli.listing import profile_line
    from restnet_compile.config.names import builtin_dir, read_plain_fields

    p = load_profile(name)
    expected = (
        f"{p.name:8} {p.device_class:7} latency p{p.latency.percentile} <= {p.latency.budget:g} ms, "
        f"RAM {format_size(p.ram)}, flash {format_size(p.flash)}, {'/'.join(p.dtypes)}, target {p.target}  - {p.soc}"
    )
    assert profile_line(read_plain_fields(builtin_dir("profiles") / f"{name}.yaml")) == expected


@pytest.mark.parametrize("name", TARGETS)
def test_the_light_reader_lists_a_target_as_the_schema_reads_it(name: str) -> None:
    from restnet_compile.cli.listing import target_line
    from restnet_compile.config.names import builtin_dir, read_plain_fields

    t = load_target(name)
    fields = read_plain_fields(builtin_dir("targets") / f"{name}.yaml")
    assert target_line(fields) == f"{t.name:12} {t.exporter:7} {t.dtype:5} - {t.description}"


def test_the_tflm_target_says_what_its_bundle_holds() -> None:
    text = load_target("tflm-int8").description + builtin_text("profiles", "mcu")
    assert "one per variant" not in text and "flatbuffer per variant" not in text
    assert "one seg-<id>.tflite per segment" in text and "one flatbuffer per segment" in text
