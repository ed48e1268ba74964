"""Export targets: TFLite Micro C arrays, ONNX int8/fp16, op checks, and the known converter traps."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import load_target
from restnet_compile.errors import BadInputError
from restnet_compile.export import EXPORTERS
from restnet_compile.export.c_array import c_identifier, render_c_arrays
from restnet_compile.export.ops import check_ops, tflite_ops
from restnet_compile.export.tflite import ONNX2TF_SAMPLE, onnx2tf_environment

FAST = {"plan": {"max_candidates": 1}, "tune": {"epochs": 1}, "selection": "feasible"}


@pytest.fixture(scope="module")
def tflm_build(tflm_bundle: api.BuildResult) -> api.BuildResult:
    return tflm_bundle


def test_tflm_bundle_has_one_flatbuffer_per_variant_and_c_arrays(tflm_build: api.BuildResult) -> None:
    shipped = tflm_build.manifest.shipped()
    files = set(tflm_build.manifest.files)
    assert {f"{v.id}.tflite" for v in shipped} | {
        "model_data.cc",
        "model_data.h",
        "report.md",
        "reference.npz",
        "report.html",
        "pareto.png",
        "cka.png",
    } == files
    for v in shipped:
        assert v.file is not None and v.parity is not None
        ops = tflite_ops((tflm_build.bundle_dir / v.file).read_bytes())
        assert len(ops) == 1  # one subgraph: what TFLite Micro runs
        assert set(next(iter(ops.values()))) <= set(load_target("tflm-int8").ops_allow or [])
        assert v.parity.top1_agreement >= 0.98


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_c_arrays_compile_are_aligned_and_hold_the_exact_bytes(tflm_build: api.BuildResult, tmp_path: Path) -> None:
    root = tflm_build.bundle_dir
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "model_data.h"\n'
        "int main() {\n  for (unsigned i = 0; i < g_restnet_variants_len; ++i) {\n"
        "    const RestnetVariant& v = g_restnet_variants[i];\n"
        '    std::printf("%s %u %d\\n", v.id, v.model_len, (int)(reinterpret_cast<uintptr_t>(v.model) % 16));\n'
        '    FILE* f = std::fopen(v.id, "wb"); std::fwrite(v.model, 1, v.model_len, f); std::fclose(f);\n'
        "  }\n}\n"
    )
    exe = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++17", f"-I{root}", str(main), str(root / "model_data.cc"), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(exe)], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split("\n")
    rows = [line.split() for line in out if line]
    assert rows and all(int(align) == 0 for _, _, align in rows)
    for vid, length, _ in rows:
        assert (tmp_path / vid).read_bytes() == (root / f"{vid}.tflite").read_bytes()
        assert int(length) == (root / f"{vid}.tflite").stat().st_size


def test_c_identifier_and_render_are_stable() -> None:
    assert c_identifier("L4-S2") == "g_model_L4_S2"
    header, source = render_c_arrays({"a-b": b"\x01\x02"})
    assert "extern const unsigned char g_model_a_b[];" in header
    assert "alignas(16) const unsigned char g_model_a_b[] = {\n  0x01, 0x02,\n};" in source
    assert "const unsigned int g_model_a_b_len = 2;" in source


def test_onnx_int8_is_static_qdq_and_meets_parity(onnx_int8_bundle: api.BuildResult) -> None:
    import onnx

    result = onnx_int8_bundle
    for v in result.manifest.shipped():
        assert v.file is not None and v.parity is not None and v.accuracy_deployed is not None
        model = onnx.load(str(result.bundle_dir / v.file), load_external_data=False)
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        assert v.parity.top1_agreement >= 0.98
        assert v.accuracy_fp32 - v.accuracy_deployed <= 0.01


def test_check_ops_names_variant_and_op() -> None:
    target = load_target("tflm-int8")
    check_ops({"small": ["CONV_2D", "MEAN"]}, target)
    with pytest.raises(BadInputError, match=r"variant L1-S1 uses op LEAKY_RELU that target tflm-int8"):
        check_ops({"L1-S1": ["CONV_2D", "LEAKY_RELU"]}, target)


def test_tflm_refuses_a_model_with_an_unsupported_op(tmp_path: Path) -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    ).eval()
    calib = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BadInputError, match="LEAKY_RELU"):
        EXPORTERS.get("tflm")().export({"leaky": net}, (1, 8, 8), calib, load_target("tflm-int8"), out, tmp_path)
    assert not list(out.iterdir())


def _tiny_rgb_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


def test_onnx2tf_never_reaches_the_network_for_rgb_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnx2tf downloads a calibration sample for 3-channel inputs unless the file is present: it must not try."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    calib = np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32)
    out = tmp_path / "out"
    out.mkdir()
    EXPORTERS.get("tflite")().export(
        {"rgb": _tiny_rgb_net()}, (3, 16, 16), calib, load_target("tflite-fp32"), out, tmp_path
    )
    assert (tmp_path / ONNX2TF_SAMPLE).is_file()
    assert (out / "variants.tflite").stat().st_size > 0


def test_onnx2tf_environment_puts_our_onnxsim_first_and_restores(tmp_path: Path) -> None:
    import os
    import sys

    before_cwd, before_path = Path.cwd(), os.environ["PATH"]
    with onnx2tf_environment(tmp_path):
        first, second = os.environ["PATH"].split(os.pathsep)[:2]
        assert second == str(Path(sys.executable).parent)
        shim = Path(shutil.which("onnxsim") or "")
        assert shim.parent == Path(first) and shim.is_relative_to(tmp_path)
        text = shim.read_text()  # our interpreter's onnxsim, minus the pass that re-fuses a zero Pad into MaxPool
        assert text.startswith(f"#!{sys.executable}\n") and '"--skip-optimization", "fuse_pad_into_pool"' in text
        assert Path.cwd() == tmp_path
    assert Path.cwd() == before_cwd and os.environ["PATH"] == before_path


def test_onnx2tf_input_file_is_not_the_one_we_keep(tmp_path: Path) -> None:
    """onnx2tf overwrites its input in place: the exporter hands it a copy, so the exported ONNX stays intact."""
    from restnet_compile.export.tflite import _to_saved_model

    net = _tiny_rgb_net()
    _to_saved_model(net, (3, 16, 16), "rgb", tmp_path)
    ours = tmp_path / "rgb.onnx"
    before = hashlib.sha256(ours.read_bytes()).hexdigest()
    from restnet_compile.export.torch_onnx import export_onnx

    export_onnx(net, (3, 16, 16), tmp_path / "again.onnx")
    assert before == hashlib.sha256((tmp_path / "again.onnx").read_bytes()).hexdigest()


class _MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, 16, 4, stride=4)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.fc(self.attn(t, t, t, need_weights=False)[0].mean(1))


def test_multihead_attention_fp32_tflite_matches_torch(tmp_path: Path) -> None:
    """The trap: onnx2tf with multi-sample calibration data gives a wrong fp32 MultiheadAttention model.

    We never hand onnx2tf calibration data (quantization is the TFLite converter's job), so fp32 must match.
    """
    from ai_edge_litert.interpreter import Interpreter

    torch.manual_seed(0)
    net = _MHA().eval()
    x = np.random.default_rng(1).random((20, 1, 16, 16), dtype=np.float32)
    out = tmp_path / "out"
    out.mkdir()
    EXPORTERS.get("tflite")().export({"mha": net}, (1, 16, 16), x, load_target("tflite-fp32"), out, tmp_path)
    runner = Interpreter(model_path=str(out / "variants.tflite")).get_signature_runner("mha")
    got = np.concatenate([runner(input=xi.transpose(1, 2, 0)[None])["logits"] for xi in x])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-4
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_output_path_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "dist"
    target.write_text("not a directory")
    with pytest.raises(BadInputError, match="not a directory"):
        api.build(BuildConfig(profile="phone"), target)
    assert target.read_text() == "not a directory"


def test_unwritable_output_directory_is_refused(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write anywhere; covered by the permission check's own logic")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(BadInputError, match="not writable"):
        api.build(BuildConfig(profile="phone"), ro / "dist")


def test_float_ops_apply_only_where_the_profile_runs_float() -> None:
    from restnet_compile.pipeline.driver import resolve

    _, phone = resolve(BuildConfig(profile="phone"))
    assert phone.float_ops == ["BATCH_MATMUL", "SOFTMAX"]
    _, mcu = resolve(BuildConfig(profile="mcu", target="tflite-int8"))
    assert mcu.float_ops == []  # int8-only device: attention stays int8 and parity decides


def test_unknown_float_op_is_refused(tmp_path: Path) -> None:
    from restnet_compile.export.tflite import _float_ops_present

    with pytest.raises(BadInputError, match="NOT_AN_OP is not a TFLite builtin operator"):
        _float_ops_present(tmp_path, ["x"], ["SOFTMAX", "NOT_AN_OP"])


def test_onnx2tf_exiting_becomes_one_error_line_with_its_message(tmp_path: Path) -> None:
    """onnx2tf ends a failed conversion with sys.exit(1) after printing why: that must not vanish silently."""
    from restnet_compile.errors import RestnetError

    with pytest.raises(RestnetError, match=r"onnx2tf failed \(exit 1\).*Unsupported op Foo"):
        with onnx2tf_environment(tmp_path):
            print("ERROR: Unsupported op Foo")
            raise SystemExit(1)
