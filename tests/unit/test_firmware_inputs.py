"""The firmware verb's checks and parsers, without building anything: bad input is one line and exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restnet_compile.errors import BadInputError
from restnet_compile.firmware.compile_errors import first_error
from restnet_compile.firmware.cpus import CPUS, cpu_by_name
from restnet_compile.firmware.execute import parse_output
from restnet_compile.firmware.project import render_linker_script
from restnet_compile.firmware.sizes import map_sizes
from restnet_compile.firmware.toolchain import check_tflm_tree, find_compiler
from tests.unit.conftest import CliCall

DATA = Path(__file__).resolve().parents[1] / "data"


def test_unknown_cpu_and_kernels_name_the_valid_choices() -> None:
    with pytest.raises(BadInputError, match="--cpu 'cortex-m0' is not known; valid choices: host, cortex-m4"):
        cpu_by_name("cortex-m0")
    with pytest.raises(BadInputError, match="valid choices: reference, cmsis-nn"):
        cpu_by_name("cortex-m4", "neon")
    with pytest.raises(BadInputError, match="cmsis-nn needs a Cortex-M CPU"):
        cpu_by_name("host", "cmsis-nn")


def test_a_folder_that_is_not_a_tflm_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such folder"):
        check_tflm_tree(tmp_path / "missing")
    with pytest.raises(BadInputError, match="not a TensorFlow Lite Micro source tree"):
        check_tflm_tree(tmp_path)
    with pytest.raises(BadInputError, match="RESTNET_TFLM_DIR"):
        check_tflm_tree(None)


def test_a_missing_cross_compiler_names_its_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInputError, match="install the Debian package gcc-arm-none-eabi"):
        find_compiler(CPUS["cortex-m4"])


def _fake_tflm(root: Path) -> Path:
    for marker in ("tensorflow/lite/micro/tools/make/Makefile", "tensorflow/lite/micro/micro_interpreter.h"):
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    return root


def test_cli_bad_inputs_are_one_line_and_exit_2(tmp_path: Path, cli_in_process: CliCall) -> None:
    bundle = tmp_path / "phone-tflite-int8"
    bundle.mkdir()
    shutil.copy(DATA / "phone-tflite-int8.manifest.json", bundle / "manifest.json")
    tflm = _fake_tflm(tmp_path / "tflm")
    cases = {
        ("--cpu", "cortex-m3", "--tflm", str(tflm)): "--cpu 'cortex-m3' is not known",
        ("--cpu", "host", "--tflm", str(tmp_path / "nope")): "no such folder",
        ("--cpu", "host", "--tflm", str(tmp_path)): "not a TensorFlow Lite Micro source tree",
        ("--cpu", "host", "--tflm", str(tflm)): "is for target tflite-int8 (tflite); firmware needs",
    }
    for extra, message in cases.items():
        run = cli_in_process("firmware", str(bundle), "--out", str(tmp_path / "fw"), *extra)
        code, err = run.returncode, run.stderr.strip()
        assert code == 2, (extra, err)
        assert len(err.splitlines()) == 1 and message in err, (extra, err)


def test_an_output_folder_that_is_not_a_firmware_project_is_left_alone(tmp_path: Path) -> None:
    from restnet_compile.firmware.driver import _check_out

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(BadInputError, match="exists and is not a firmware project"):
        _check_out(tmp_path / "mine")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "project.json").write_text("{}")
    _check_out(tmp_path / "old")  # a previous project is replaced


def test_the_first_compiler_error_is_reported_not_the_wall() -> None:
    log = "g++ -c a.cc\nIn file included from a.h:1:\nx.cc:3:5: error: 'foo' was not declared\nx.cc:9: error: more\n"
    assert first_error(log) == "x.cc:3:5: error: 'foo' was not declared"
    assert first_error("make: *** [Makefile:3: a.o] Error 1") == "make: *** [Makefile:3: a.o] Error 1"


def test_firmware_lines_parse_and_a_run_without_end_is_rejected() -> None:
    text = (
        "restnet: begin 2 2 1024\nrestnet: out small 0 1 -2 3\nrestnet: out small 1 4 5 -6\n"
        "restnet: arena small 900 1000\n"
        "restnet: select 2048 inf small\nTFLM says hi\nrestnet: end 0\n"
    )
    parsed = parse_output(text)
    assert parsed is not None
    outputs, arena, selected = parsed
    assert outputs["small"].tolist() == [[1, -2, 3], [4, 5, -6]] and outputs["small"].dtype.name == "int8"
    assert arena == {"small": 900} and selected == [(2048, float("inf"), "small")]
    assert parse_output(text.replace("restnet: end 0", "restnet: end 1")) is None
    assert parse_output(text.replace("restnet: end 0\n", "")) is None


def test_linker_script_places_vectors_code_and_ram_for_each_board() -> None:
    m4 = render_linker_script(CPUS["cortex-m4"])
    assert "CODE (rx) : ORIGIN = 0x0, LENGTH = 0x400000" in m4 and 'REGION_ALIAS("ROM", CODE);' in m4
    assert "RAM (rwx) : ORIGIN = 0x20000000" in m4 and "KEEP(*(.vectors))" in m4
    m55 = render_linker_script(CPUS["cortex-m55"])
    assert "ROM (r) : ORIGIN = 0x21000000" in m55 and "REGION_ALIAS" not in m55


MAP = """Archive member included to satisfy reference by file (symbol)

Discarded input sections

 .text          0x00000000        0x0 main.o

Memory Configuration

Linker script and memory map

.text           0x00000400     0x1000
 *(.text*)
 .text.main     0x00000400       0x40 main.o
 .text._ZN6tflite16MicroInterpreter6InvokeEv
                0x00000440      0x200 /cache/libtensorflow-microlite.a(micro_interpreter.o)
 .text.memcpy   0x00000640       0x20 /usr/lib/libc.a(memcpy.o)
.rodata         0x00002000     0x3000
 .rodata.g_model_L0_1
                0x00002000     0x2800 model_data.o
 .rodata        0x00004800       0x80 reference_data.o
 .rodata        0x00004880       0x10 restnet_runtime.o
.data           0x20000000       0x10 load address 0x00005000
 .data          0x20000000       0x10 /usr/lib/libc.a(impure.o)
.bss            0x20000010     0x4000
 .bss._ZN12_GLOBAL__N_17g_arenaE
                0x20000010     0x3f00 main.o
 .bss           0x20003f10      0x100 /cache/libtensorflow-microlite.a(micro_log.o)
"""


def test_flash_and_ram_come_from_the_linker_map_by_owner(tmp_path: Path) -> None:
    (tmp_path / "firmware.map").write_text(MAP)
    flash, ram = map_sizes(tmp_path / "firmware.map")
    assert flash == {"model": 0x2800, "reference": 0x80, "runtime": 0x50, "tflm": 0x200, "libc": 0x30}
    assert ram == {".data": 0x10, ".bss": 0x4000}


RESOLVER_H = """
  TfLiteStatus AddAbs(const TFLMRegistration& registration = Register_ABS()) {
    return AddBuiltin(BuiltinOperator_ABS, registration, ParseAbs);
  }
  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D()) {
    return AddBuiltin(BuiltinOperator_CONV_2D, registration, ParseConv2D);
  }
  TfLiteStatus AddMaxPool2D(
      const TFLMRegistration& registration = Register_MAX_POOL_2D()) {
    return AddBuiltin(BuiltinOperator_MAX_POOL_2D, registration, ParsePool);
  }
"""


def test_operators_map_to_the_resolver_methods_and_kernels_of_the_tflm_tree(tmp_path: Path) -> None:
    from restnet_compile.firmware.opset import RESOLVER, library_ops, registrations, resolver_methods

    (tmp_path / RESOLVER).parent.mkdir(parents=True)
    (tmp_path / RESOLVER).write_text(RESOLVER_H)
    methods = resolver_methods(tmp_path, ["CONV_2D", "MAX_POOL_2D"])
    assert methods == ["AddConv2D", "AddMaxPool2D"]
    assert registrations(tmp_path, methods) == ("Register_CONV_2D", "Register_MAX_POOL_2D")
    with pytest.raises(BadInputError, match="operator LEAKY_RELU, which this TensorFlow Lite Micro tree cannot"):
        resolver_methods(tmp_path, ["CONV_2D", "LEAKY_RELU"])
    assert resolver_methods(tmp_path, ["CONV_2D", "LEAKY_RELU"], strict=False) == ["AddConv2D"]
    assert {"CONV_2D", "FULLY_CONNECTED", "MEAN", "LEAKY_RELU"} <= set(library_ops(["LEAKY_RELU"]))
