"""Selection on dtypes, operators and the TFLM arena; nothing fits; impossible profile limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from restnet_compile.config.device import builtin_text, load_profile
from restnet_compile.errors import BadInputError, InfeasibleError
from restnet_compile.selection.rule import Option, describe_misses, limit_violations, misses, select

MCU = load_profile("mcu")
PHONE = load_profile("phone")
KB = 1000


def cand(vid: str, **kw: object) -> Option:
    base = {"latency_ms": 4.0, "ram_bytes": 100 * KB, "flash_bytes": 500 * KB, "val_accuracy": 0.9, "flops": 1}
    return Option(vid, **{**base, **kw})  # type: ignore[arg-type]


def test_dtype_the_profile_cannot_run_is_rejected() -> None:
    assert limit_violations(cand("f", dtype="fp32"), MCU) == ["dtype fp32 not in int8"]
    assert limit_violations(cand("f", dtype="fp32"), PHONE) == []


def test_ops_outside_ops_allow_are_rejected_once_known() -> None:
    assert limit_violations(cand("a", ops=("CONV_2D", "GELU", "TANH")), MCU) == [
        "ops GELU, TANH not supported by tflite-micro"
    ]
    assert limit_violations(cand("a", ops=("CONV_2D", "MEAN")), MCU) == []
    assert limit_violations(cand("a", ops=None), MCU) == []  # before export the graph is not known
    assert limit_violations(cand("a", ops=("GELU",)), PHONE) == []  # phone lists no ops_allow


def test_arena_limit_applies_to_mcu() -> None:
    assert MCU.arena is not None
    over = cand("a", arena_bytes=MCU.arena + 16)
    assert limit_violations(over, MCU) == ["arena 491.5 KB > 480.0 KiB"]
    assert misses(over, MCU)["arena"] == pytest.approx(16 / MCU.arena)


def test_nothing_fits_names_closest_with_how_far_it_misses() -> None:
    cands = [
        cand("slow", latency_ms=120.0, ram_bytes=600 * 1024),
        cand("near", latency_ms=99.0),
        cand("fp", latency_ms=1.0, dtype="fp32"),  # fast, but a hard miss: never the closest
    ]
    with pytest.raises(InfeasibleError) as info:
        select(cands, MCU)
    assert str(info.value) == "no variant fits profile mcu; closest is near: latency p90 99.00 ms > 90 ms (+10%)"
    assert describe_misses(cands[0], MCU) == ("latency p90 120.00 ms > 90 ms (+33%); RAM 600.0 KiB > 512.0 KiB (+17%)")


def test_rejected_variants_carry_every_reason() -> None:
    cands = [cand("ok"), cand("bad", ram_bytes=612 * KB, ops=("GELU",), val_accuracy=0.99)]
    d = {x.variant_id: x for x in select(cands, MCU)}
    assert d["bad"].reasons == ("RAM 612.0 KB > 512.0 KiB", "ops GELU not supported by tflite-micro")
    assert d["ok"].selected


def _profile(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(builtin_text("profiles", "mcu"))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"ram": "0KB"}, "field 'ram': size '0KB' must be greater than zero"),
        ({"flash": "-2MB"}, "field 'flash': size '-2MB' must be greater than zero, e.g. '512KB'"),
        ({"latency__budget": "-5ms"}, "field 'latency.budget': duration '-5ms' must be greater than zero, e.g. '20ms'"),
        ({"ram": "512 furlongs"}, "field 'ram': size '512 furlongs' has unknown unit 'furlongs'"),
        ({"latency__budget": "20KB"}, "field 'latency.budget': duration '20KB' has unknown unit 'KB'"),
        ({"latency__budget": "0ms"}, "field 'latency.budget': duration '0ms' must be greater than zero"),
        ({"latency__percentile": 0}, "field 'latency.percentile'"),
        ({"latency_model__efficiency": 1.5}, "field 'latency_model.efficiency'"),
        ({"arena": "1MB"}, "arena must not be larger than ram"),
        ({"runtime_ram": "1MB"}, "runtime_ram must be less than ram"),
        ({"ops_allow": []}, "field 'ops_allow'"),
    ],
)
def test_impossible_profile_limits_are_bad_input(tmp_path: Path, change: dict, needle: str) -> None:
    with pytest.raises(BadInputError) as info:
        load_profile(_profile(tmp_path, **change))
    msg = str(info.value)
    assert needle in msg and "\n" not in msg
