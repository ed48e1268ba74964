"""RAM and flash from the exported graph, checked against the real TensorFlow Lite Micro interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restnet_compile.config.device import load_profile
from restnet_compile.export.graph_cost import graph_cost, variant_model
from restnet_compile.export.graph_memory import (
    OpInfo,
    SubgraphInfo,
    TensorInfo,
    arena_estimate,
    extract_signature,
    liveness,
    peak_activation_bytes,
    read_graphs,
)
from restnet_compile.export.tflm_check import runs_in, smallest_arena


def _t(i: int, nbytes: int, constant: bool = False) -> TensorInfo:
    return TensorInfo(i, f"t{i}", (nbytes,), "int8", nbytes, constant)


def test_liveness_keeps_a_skip_connection_alive() -> None:
    # t0 -> op0 -> t1 -> op1 -> t2 -> op2(t2, t1) -> t3 ; t4 is a constant weight of op1
    sizes = [100, 2000, 500, 300, 64]
    sg = SubgraphInfo(
        "g",
        0,
        [_t(i, n, constant=(i == 4)) for i, n in enumerate(sizes)],
        [OpInfo("CONV_2D", (0,), (1,)), OpInfo("CONV_2D", (1, 4), (2,)), OpInfo("ADD", (2, 1), (3,))],
        inputs=(0,),
        outputs=(3,),
    )
    assert liveness(sg) == {0: (0, 0), 1: (0, 2), 2: (1, 2), 3: (2, 2)}
    # op0: t0 + t1 = 112 + 2000; op1: t1 + t2 = 2000 + 512; op2: t1 + t2 + t3 = 2000 + 512 + 304
    assert peak_activation_bytes(sg) == 2000 + 512 + 304
    assert peak_activation_bytes(sg, alignment=1) == 2000 + 500 + 300


@pytest.fixture(scope="module")
def two_signature_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-int8 .tflite with two signatures sharing a first conv (converted by TensorFlow, like the bundle)."""
    import tensorflow as tf

    g = np.random.default_rng(0)
    w1 = tf.constant(g.normal(0, 0.3, (3, 3, 1, 8)), tf.float32)  # constants: nothing for the converter to freeze
    w2 = tf.constant(g.normal(0, 0.3, (3, 3, 8, 16)), tf.float32)
    wd = tf.constant(g.normal(0, 0.3, (16, 10)), tf.float32)

    def conv(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))

    def head(h: tf.Tensor) -> dict:
        return {"logits": tf.matmul(tf.reduce_mean(h, axis=(1, 2)), wd)}

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 16, 16, 1), tf.float32, name="input")])
        def big(self, x: tf.Tensor) -> dict:
            return head(tf.nn.relu(tf.nn.conv2d(conv(x), w2, 2, "SAME")))

        @tf.function(input_signature=[tf.TensorSpec((1, 16, 16, 1), tf.float32, name="input")])
        def tiny(self, x: tf.Tensor) -> dict:
            return head(tf.concat([conv(x), conv(x)], axis=3))

    m = M()
    out = tmp_path_factory.mktemp("tfl")
    fns = [m.big.get_concrete_function(), m.tiny.get_concrete_function()]
    conv_ = tf.lite.TFLiteConverter.from_concrete_functions(fns, m)
    rng = np.random.default_rng(0)

    def rep():  # type: ignore[no-untyped-def]
        for key in ("big", "tiny"):
            for _ in range(8):
                yield key, {"input": rng.random((1, 16, 16, 1), dtype=np.float32)}

    conv_.optimizations = [tf.lite.Optimize.DEFAULT]
    conv_.representative_dataset = rep
    conv_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv_.inference_input_type = tf.int8
    conv_.inference_output_type = tf.int8
    path = out / "two.tflite"
    path.write_bytes(conv_.convert())
    return path


def test_read_graphs_lists_every_signature(two_signature_model: Path) -> None:
    graphs = read_graphs(two_signature_model)
    assert set(graphs) == {"big", "tiny"}
    assert "CONV_2D" in graphs["big"].op_names and "FULLY_CONNECTED" in graphs["big"].op_names
    big = graphs["big"]
    # the 16x16x8 int8 output of the first conv is live together with its 16x16x1 input: at least 2304 bytes
    assert peak_activation_bytes(big) >= 16 * 16 * 8 + 16 * 16
    assert big.constant_bytes > 8 * 9 + 16 * 8 * 9  # int8 conv weights at least


def test_extracted_signature_runs_like_the_bundle(two_signature_model: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(1).integers(-128, 127, (1, 16, 16, 1), dtype=np.int8)
    bundle = Interpreter(model_path=str(two_signature_model))
    for key in ("big", "tiny"):
        single = extract_signature(two_signature_model, key)
        assert set(read_graphs(single)) == {key}
        assert len(single) < two_signature_model.stat().st_size
        one = Interpreter(model_content=single)
        expected = bundle.get_signature_runner(key)(input=x)["logits"]
        np.testing.assert_array_equal(one.get_signature_runner(key)(input=x)["logits"], expected)


@pytest.mark.parametrize("key", ["big", "tiny"])
def test_tflm_arena_estimate_is_an_upper_bound_within_10_percent(two_signature_model: Path, key: str) -> None:
    model = extract_signature(two_signature_model, key)
    (sg,) = read_graphs(model).values()
    estimate = arena_estimate(sg).total
    measured = smallest_arena(model, 1 << 20)
    assert runs_in(model, measured) and not runs_in(model, measured - 16)
    assert measured <= estimate <= 1.10 * measured, (key, estimate, measured)


def test_graph_cost_on_mcu_and_phone(two_signature_model: Path) -> None:
    mcu, phone = load_profile("mcu"), load_profile("phone")
    model = variant_model(two_signature_model, "big")
    on_mcu = graph_cost(model, "big", mcu, measure_tflm=True)
    on_phone = graph_cost(model, "big", phone, measure_tflm=False)
    assert on_mcu.arena_measured is not None and on_mcu.arena_estimate is not None
    assert on_mcu.ram_bytes(mcu) == on_mcu.arena_estimate + mcu.runtime_ram  # weights stay in flash
    assert on_phone.arena_estimate is None
    assert on_phone.ram_bytes(phone) == on_phone.activation_bytes + on_phone.constant_bytes + phone.runtime_ram
    assert on_mcu.model_bytes == len(model)


@pytest.mark.slow
def test_every_mcu_variant_runs_in_the_profile_arena(tmp_path: Path) -> None:
    from restnet_compile import api
    from restnet_compile.config.build import BuildConfig

    mcu = load_profile("mcu")
    config = BuildConfig.model_validate({"profile": "mcu", "selection": "feasible", "tune": {"epochs": 1}})
    result = api.build(config, tmp_path)
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    shipped = [v for v in manifest["variants"] if v["selected"]]
    segments = {s["id"]: s for s in manifest["segments"]}
    assert shipped
    for v in shipped:
        assert v["ram_source"] == "tflite-graph"
        measured, estimate = v["arena_bytes_measured"], v["arena_bytes"]
        assert measured <= estimate <= 1.10 * measured, v["id"]
        assert estimate <= mcu.arena
        for sid in v["chain"]:  # each segment in the arena the chain reuses
            assert runs_in((result.bundle_dir / segments[sid]["file"]).read_bytes(), mcu.arena)
