"""examples/tflm_chain.cc compiles against generated model_data.h/.cc and picks a variant by budget.

TFLite Micro's sources are not on this machine: the example is compiled and linked against minimal stand-ins with
the same API (tests/c_stubs), which only let it run the selection and walk the chain.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from restnet_compile.bundle.segment_info import Boundary, Segment
from restnet_compile.export.base import VariantBudget
from restnet_compile.export.c_array import c_identifier, render_c_arrays

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / "tests" / "c_stubs"
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")


def _seg(sid: str, shape_in: tuple[int, ...], shape_out: tuple[int, ...], scale_in: float = 0.5) -> Segment:
    return Segment(
        id=sid, model="large", start=0, stop=1, head=False, file=f"seg-{sid}.tflite", signature=sid,
        input=Boundary(shape=shape_in, dtype="int8", scale=scale_in, zero_point=0),
        output=Boundary(shape=shape_out, dtype="int8", scale=0.25, zero_point=-3),
    )  # fmt: skip


def write_model_data(root: Path) -> None:
    """Three segments and two variants sharing the first one."""
    a, b, c = _seg("L0-1", (4, 4, 1), (2, 2, 8)), _seg("LH", (2, 2, 8), (10,), 0.25), _seg("A-L1-S0", (2, 2, 8), (10,))
    models = {"L0-1": b"\x01\x02\x03", "LH": b"\x04", "A-L1-S0": b"\x05\x06"}
    budgets = [
        VariantBudget("large", (a, b), arena_bytes=1000 + 32, latency_ms=9.5, accuracy=0.99),
        VariantBudget("L1-S0", (a, c), arena_bytes=500 + 32, latency_ms=3.0, accuracy=0.95),
    ]
    header, source = render_c_arrays(models, {s.id: s for s in (a, b, c)}, budgets)
    (root / "model_data.h").write_text(header)
    (root / "model_data.cc").write_text(source)


def compile_example(bundle: Path, out: Path) -> Path:
    """Compile and link examples/tflm_chain.cc with ``bundle``'s model_data and the TFLM stand-ins."""
    exe = out / "tflm_chain"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", f"-I{bundle}", f"-I{STUBS}", str(ROOT / "examples" / "tflm_chain.cc"),
         str(bundle / "model_data.cc"), str(STUBS / "stub_tflm.cc"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return exe


def test_the_variant_table_is_rendered_with_chains_and_budgets(tmp_path: Path) -> None:
    write_model_data(tmp_path)
    header, source = (tmp_path / "model_data.h").read_text(), (tmp_path / "model_data.cc").read_text()
    assert c_identifier("A-L4-S2") == "g_model_A_L4_S2"
    assert "#define RESTNET_MAX_ARENA_BYTES 1000" in header and "#define RESTNET_MAX_BOUNDARY_BYTES 32" in header
    assert f"alignas(16) const unsigned char {c_identifier('L0-1')}[] = {{\n  0x01, 0x02, 0x03,\n}};" in source
    assert '{"L0-1", g_model_L0_1, 3, 16, 0.5f, 0, 32, 0.25f, -3}' in source
    assert "static const unsigned short chain_g_model_L1_S0[] = {0, 2};" in source
    assert '{"large", chain_g_model_large, 2, 1000, 32, 9.5f, 0.99f}' in source


@needs_gxx
def test_the_example_compiles_and_selects_the_best_variant_within_budget(tmp_path: Path) -> None:
    write_model_data(tmp_path)
    exe = compile_example(tmp_path, tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    assert "variant large: 2 segments, arena 1000 B + boundary 32 B" in run.stdout
    assert run.stdout.count("stub: interpreter for model") == 2  # one interpreter per segment, one arena
