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
from restnet_compile.export.ops import check_ops, tflite_ops
from restnet_compile.export.tflite_convert import ONNX2TF_SAMPLE, onnx2tf_environment

FAST = {"plan": {"max_candidates": 1}, "tune": {"epochs": 1}, "selection": "feasible"}


@pytest.fixture(scope="module")
def tflm_build(tflm_bundle: api.BuildResult) -> api.BuildResult:
    return tflm_bundle


def test_tflm_bundle_stores_each_segment_once_and_chains_every_variant(tflm_build: api.BuildResult) -> None:
    m = tflm_build.manifest
    segments = {s.id: s for s in m.segments or ()}
    files = set(m.files)
    assert {s.file for s in segments.values()} | {
        "model_data.cc",
        "model_data.h",
        "report.md",
        "reference.npz",
        "report.html",
        "pareto.png",
        "cka.png",
    } == files
    used = set()
    for v in m.shipped():
        assert v.file is None and v.chain and v.parity is not None
        used |= set(v.chain)
        assert v.model_bytes == sum(segments[s].model_bytes for s in v.chain)
        assert v.parity.top1_agreement >= 0.98
        assert v.accuracy_deployed is not None and v.parity.accuracy_torch - v.accuracy_deployed <= 0.01
    assert used == set(segments)  # nothing stored that no variant runs
    assert m.bundle_model_bytes == sum(s.model_bytes for s in segments.values())
    for s in segments.values():
        ops = tflite_ops((tflm_build.bundle_dir / s.file).read_bytes())
        assert len(ops) == 1  # one subgraph: what TFLite Micro runs
        assert set(next(iter(ops.values()))) <= set(load_target("tflm-int8").ops_allow or [])


def test_tflm_arena_estimates_cover_the_measured_arena_within_ten_percent(tflm_build: api.BuildResult) -> None:
    m = tflm_build.manifest
    for s in m.segments or ():
        assert s.arena_bytes is not None and s.arena_bytes_measured is not None
    for v in m.shipped():
        assert v.arena_bytes is not None and v.arena_bytes_measured is not None
        assert v.arena_bytes_measured <= v.arena_bytes <= 1.10 * v.arena_bytes_measured, v.id


def _tflm_chain(root: Path, chain: list, arenas: list[int], x: np.ndarray) -> np.ndarray:
    """One image through ``chain`` in the TFLite Micro interpreter, each segment in its measured arena."""
    from tflite_micro.python.tflite_micro import runtime

    from restnet_compile.runtime.chain import dequantize, quantize, requantize

    q = quantize(x, chain[0].input)
    for k, (seg, arena) in enumerate(zip(chain, arenas, strict=True)):
        if k:
            q = requantize(q, chain[k - 1].output, seg.input)
        interp = runtime.Interpreter.from_bytes((root / seg.file).read_bytes(), arena_size=arena)
        interp.set_input(q, 0)
        interp.invoke()
        q = interp.get_output(0)
    return dequantize(q, chain[-1].output)


def test_every_chain_runs_in_tflite_micro_and_agrees_with_the_runtime(tflm_build: api.BuildResult) -> None:
    from restnet_compile.runtime import Bundle

    bundle = Bundle.open(tflm_build.bundle_dir)
    m = bundle.manifest
    with np.load(tflm_build.bundle_dir / "reference.npz") as ref:
        images = ref["inputs"][:16]
    for v in m.shipped():
        chain = m.chain(v.id)
        arenas = [int(s.arena_bytes_measured or 0) for s in chain]
        micro = np.concatenate([_tflm_chain(bundle.root, chain, arenas, x.transpose(1, 2, 0)[None]) for x in images])
        litert = bundle.run(images, v.id)
        assert (micro.argmax(1) == litert.argmax(1)).mean() >= 0.9, v.id
        step = chain[-1].output.scale
        assert np.abs(micro - litert).max() <= 8 * step, v.id  # a few int8 steps apart at most


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_c_arrays_compile_are_aligned_and_hold_the_exact_bytes(tflm_build: api.BuildResult, tmp_path: Path) -> None:
    root = tflm_build.bundle_dir
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "model_data.h"\n'
        "int main() {\n  for (unsigned i = 0; i < g_restnet_segments_len; ++i) {\n"
        "    const RestnetSegment& s = g_restnet_segments[i];\n"
        '    std::printf("%s %u %d\\n", s.id, s.model_len, (int)(reinterpret_cast<uintptr_t>(s.model) % 16));\n'
        '    FILE* f = std::fopen(s.id, "wb"); std::fwrite(s.model, 1, s.model_len, f); std::fclose(f);\n'
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
    segments = {s.id: s for s in tflm_build.manifest.segments or ()}
    assert rows and all(int(align) == 0 for _, _, align in rows) and {r[0] for r in rows} == set(segments)
    for sid, length, _ in rows:
        assert (tmp_path / sid).read_bytes() == (root / segments[sid].file).read_bytes()
        assert int(length) == (root / segments[sid].file).stat().st_size


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
    from restnet_compile.export.tflite_convert import to_saved_model

    net = _tiny_rgb_net()
    to_saved_model(net, (3, 16, 16), "rgb", tmp_path)
    ours = tmp_path / "rgb.onnx"
    before = hashlib.sha256(ours.read_bytes()).hexdigest()
    from restnet_compile.export.torch_onnx import export_onnx

    export_onnx(net, (3, 16, 16), tmp_path / "again.onnx")
    assert before == hashlib.sha256((tmp_path / "again.onnx").read_bytes()).hexdigest()


def test_onnx2tf_writes_the_savedmodel_alone_with_one_signature(tmp_path: Path) -> None:
    """onnx2tf would also convert to a float32 and a float16 .tflite that nothing reads: only the SavedModel is
    written, and it holds the one ``serving_default`` signature the exporter joins."""
    import tensorflow as tf

    from restnet_compile.export.tflite_convert import to_saved_model

    out = to_saved_model(_tiny_rgb_net(), (3, 16, 16), "rgb", tmp_path)
    assert (out / "saved_model.pb").is_file()
    assert not list(tmp_path.rglob("*.tflite")), sorted(p.name for p in tmp_path.rglob("*.tflite"))
    assert list(tf.saved_model.load(str(out)).signatures) == ["serving_default"]


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
    from restnet_compile.export.tflite_convert import _float_ops_present

    with pytest.raises(BadInputError, match="NOT_AN_OP is not a TFLite builtin operator"):
        _float_ops_present(tmp_path, ["x"], ["SOFTMAX", "NOT_AN_OP"])


def test_onnx2tf_exiting_becomes_one_error_line_with_its_message(tmp_path: Path) -> None:
    """onnx2tf ends a failed conversion with sys.exit(1) after printing why: that must not vanish silently."""
    from restnet_compile.errors import RestnetError

    with pytest.raises(RestnetError, match=r"onnx2tf failed \(exit 1\).*Unsupported op Foo"):
        with onnx2tf_environment(tmp_path):
            print("ERROR: Unsupported op Foo")
            raise SystemExit(1)
