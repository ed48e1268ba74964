"""PyTorch -> ONNX -> onnx2tf SavedModel -> calibrated TFLite: the conversion every TFLite exporter shares
(``export.tflite``: one file of signatures; ``export.tflite_segments``: segments).

Traps handled here (docs/profiles-and-targets.md lists them): onnx2tf downloads a calibration sample unless
``calibration_image_sample_data_20x128x128x3_float32.npy`` is in its working directory (we write one, so it never
reaches the network); it runs ``onnxsim`` found on PATH (we put this interpreter's bin first) and overwrites its
input ONNX in place (we pass a copy). A padded max-pool gets an explicit Pad first (``onnx_maxpool``): onnx2tf's
-FLT_MAX padding ruins int8 scales.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from restnet_compile._util.quiet import quiet_native_output
from restnet_compile._util.tempdirs import make_owned_dir
from restnet_compile._util.torch_digest import module_digest
from restnet_compile.config.device import Target
from restnet_compile.errors import BadInputError, RestnetError
from restnet_compile.export.base import Conversion
from restnet_compile.export.onnx_maxpool import explicit_maxpool_padding
from restnet_compile.export.ops import tflite_ops
from restnet_compile.export.torch_onnx import INPUT_NAME, OUTPUT_NAME, export_onnx

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# onnxsim's optimizer (onnxoptimizer 0.4) folds a zero Pad into a MaxPool's own -inf padding, which is wrong and
# would undo ``explicit_maxpool_padding``: onnx2tf finds ``onnxsim`` on PATH, so it finds this one, which skips that
# pass and nothing else.
ONNXSIM_SHIM = """#!{python}
import sys

from onnxsim import main

sys.argv += ["--skip-optimization", "fuse_pad_into_pool"]
sys.exit(main())
"""


@contextlib.contextmanager
def onnx2tf_environment(work_dir: Path) -> Iterator[None]:
    """Run onnx2tf offline: its sample file present, our onnxsim first on PATH, cwd = ``work_dir``, output muted."""
    sample = work_dir / ONNX2TF_SAMPLE
    if not sample.exists():
        rng = np.random.default_rng(0)
        np.save(sample, rng.random((20, 128, 128, 3), dtype=np.float32))
    shim_dir = work_dir / "onnxsim-bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "onnxsim"
    shim.write_text(ONNXSIM_SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    old_cwd, old_path = Path.cwd(), os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(shim_dir), str(Path(sys.executable).parent), old_path])
    os.chdir(work_dir)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    except SystemExit as exc:  # onnx2tf reports a failed conversion by sys.exit(1) after printing why
        said = [line.strip() for line in sink.getvalue().splitlines() if line.strip()]
        why = " | ".join(said[-3:]) or "no message"
        raise RestnetError(f"onnx2tf failed (exit {exc.code}) in {work_dir}: {why}") from None
    finally:
        os.chdir(old_cwd)
        os.environ["PATH"] = old_path


@contextlib.contextmanager
def tensorflow_quiet() -> Iterator[None]:
    """TensorFlow's Python logger at ERROR and its C++ log level at 3 while converting; both restored after."""
    logger = logging.getLogger("tensorflow")
    old_level, old_env = logger.level, os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if old_env is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


@dataclass(frozen=True)
class Converted:
    """A module's onnx2tf SavedModel made elsewhere: its files (relative path -> bytes), and what it was made from."""

    name: str
    digest: str
    input_shape: tuple[int, ...]
    files: dict[str, bytes]


#: Prefix of the temporary folder of one conversion (a killed process's is removed by the next job there).
CONVERT_PREFIX = "restnet-convert-"
_PREBUILT: ContextVar[tuple[dict[str, Converted], set[str]] | None] = ContextVar("restnet_prebuilt", default=None)


def convert(c: Conversion) -> Converted:
    """``c``'s module converted to an onnx2tf SavedModel in a temporary folder of its own, returned as bytes (a job
    an executor may run anywhere; :func:`prebuilt` puts it back where :func:`to_saved_model` would have written
    it)."""
    tmp = make_owned_dir(Path(tempfile.gettempdir()), CONVERT_PREFIX)
    try:
        with quiet_native_output(), tensorflow_quiet():
            out = to_saved_model(c.module, c.input_shape, c.name, tmp)
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Converted(c.name, module_digest(c.module), tuple(c.input_shape), files)


@contextlib.contextmanager
def prebuilt(converted: Iterable[Converted]) -> Iterator[set[str]]:
    """Within the block, :func:`to_saved_model` of a module that one of ``converted`` was made from (same name,
    architecture, weights and input shape) writes those files instead of converting it again; the names of those
    it used are added to the set it gives."""
    used: set[str] = set()
    token = _PREBUILT.set(({c.name: c for c in converted}, used))
    try:
        yield used
    finally:
        _PREBUILT.reset(token)


def _reuse(module: nn.Module, input_shape: tuple[int, ...], name: str, out: Path) -> bool:
    """Write the prebuilt SavedModel of ``module`` into ``out``, if :func:`prebuilt` holds one."""
    held, used = _PREBUILT.get() or ({}, set())
    ready = held.get(name)
    if ready is None or ready.input_shape != tuple(input_shape) or ready.digest != module_digest(module):
        return False
    for rel, data in ready.files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    used.add(name)
    return True


def to_saved_model(module: nn.Module, input_shape: tuple[int, ...], name: str, work_dir: Path) -> Path:
    """``module`` through ONNX and onnx2tf into the SavedModel ``work_dir/sm_<name>`` (its path); one that
    :func:`prebuilt` holds is written there instead."""
    out = work_dir.resolve() / f"sm_{name}"
    if _reuse(module, input_shape, name, out):
        return out

    import onnx2tf
    import tf_keras

    tf_keras.backend.clear_session()  # layer-name counters are global: reset them so names (and bytes) repeat
    work_dir = work_dir.resolve()  # onnx2tf runs with its work dir as cwd: relative paths would point elsewhere

    onnx_path = export_onnx(module, input_shape, work_dir / f"{name}.onnx")
    copy = work_dir / f"{name}.onnx2tf.onnx"
    model = onnx.load(str(onnx_path))
    if explicit_maxpool_padding(model):
        onnx.save(model, str(copy))
    else:
        shutil.copyfile(onnx_path, copy)
    with onnx2tf_environment(work_dir):
        model = onnx2tf.convert(
            input_onnx_file_path=str(copy),
            output_folder_path=str(out),
            non_verbose=True,
            # the Keras model alone: onnx2tf would also write a float32 and a float16 .tflite file that nothing
            # reads, two conversions that took as long as the rest of its work
            disable_model_save=True,
            # exact GELU (timm's transformers) exports as Erf, which TFLite has no builtin for: write erf as a
            # polynomial of builtins instead (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7); graphs without Erf are
            # unchanged
            replace_to_pseudo_operators=["erf"],
        )
        _write_saved_model(model, out)
    return out


def _write_saved_model(model: Any, out: Path) -> None:
    """The SavedModel of onnx2tf's Keras ``model`` with its one ``serving_default`` signature, written as onnx2tf
    writes it with ``output_signaturedefs`` (an export archive of one endpoint)."""
    import tensorflow as tf
    import tf_keras

    archive = tf_keras.export.ExportArchive()
    archive.add_endpoint(
        name="serving_default",
        fn=lambda *inputs: model(inputs),
        input_signature=[tf.TensorSpec(t.shape, t.dtype, t.name) for t in model.inputs],
    )
    archive.write_out(str(out))


def signature_function(fn, shape: tuple[int, ...]):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)])
    def run(input):
        return {OUTPUT_NAME: fn(**{INPUT_NAME: input})["output_0"]}

    return run


def convert_calibrated(
    saved_model: Path, samples: dict[str, np.ndarray], target: Target, conversion_metadata: bool = True
) -> bytes:
    """Convert the signatures ``samples`` names to the target's dtype, each calibrated on its own samples (N x the
    signature's input shape, in the file's layout). ``conversion_metadata=False`` leaves out the converter's
    environment record (about 150 bytes per file; the manifest records the tool versions)."""
    import tensorflow as tf

    keys = list(samples)

    def representative() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        for key in keys:
            for x in samples[key]:
                yield key, {INPUT_NAME: x[None]}

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=keys)
    conv.exclude_conversion_metadata = not conversion_metadata
    io_types = {"int8": tf.int8, "fp16": tf.float32, "fp32": tf.float32}
    if target.dtype == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = io_types[target.io_dtype]
        conv.inference_output_type = io_types[target.io_dtype]
        present = _float_ops_present(saved_model, keys, target.float_ops) if target.float_ops else []
        if present:
            return _mixed_int8(conv, present, io_types[target.io_dtype])
    elif target.dtype == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def _float_ops_present(saved_model: Path, keys: list[str], float_ops: list[str]) -> list[str]:
    """Which of ``float_ops`` the graph has (from a quick float conversion): without any, plain full int8."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema

    unknown = sorted(set(float_ops) - set(vars(schema.BuiltinOperator)))
    if unknown:
        raise BadInputError(f"target float_ops: {', '.join(unknown)} is not a TFLite builtin operator (e.g. SOFTMAX)")
    float_model = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=keys).convert()
    ops = {op for graph in tflite_ops(float_model).values() for op in graph}
    return sorted(set(float_ops) & ops)


def _mixed_int8(conv, float_ops: list[str], io_type) -> bytes:
    """int8 except ``float_ops``, which keep float kernels between DEQUANTIZE / QUANTIZE.

    The public converter has no per-op denylist; TensorFlow's own quantization debugger gets one by calibrating
    first and then quantizing with ``mlir_quantize(denylisted_ops=...)`` (pinned TF 2.19). We do the same. Why:
    attention scores (an activation x activation BATCH_MATMUL followed by SOFTMAX) lose almost everything with
    per-tensor int8 activations; the demo ViT agrees with PyTorch on 23 % of test images full-int8, 99.7 % with
    these two ops in float, for 0.4 % more bytes.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert

    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.experimental_mlir_quantizer = True
    conv._experimental_calibrate_only = True
    calibrated = conv.convert()
    return convert.mlir_quantize(
        calibrated,
        disable_per_channel=False,
        fully_quantize=True,
        input_data_type=io_type,
        output_data_type=io_type,
        denylisted_ops=list(float_ops),
    )
