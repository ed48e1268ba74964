"""Segments to TFLite, each quantized once on the inputs it sees: one single-signature ``.tflite`` per segment
(``segment_file: each``), or every segment a signature of one ``segments.tflite`` (``segment_file: one``: one file's
overhead instead of one per segment, and no block stored twice, unlike one signature per whole variant).

Each segment goes PyTorch -> ONNX -> onnx2tf SavedModel like a whole variant (``export.tflite_convert``); onnx2tf stores
feature maps channels-last, so a segment's boundaries are NHWC in its file, as are the images. The boundaries
(shape, dtype, int8 scale and zero point) are read back from the converted file, and every chain is checked to
pass a tensor of one shape and dtype from each segment to the next; scales may differ (the runtime requantizes).

Every file is compacted (``export.tflite_rewrite.compact``: repeated quantization tables and constants stored once,
no tensor names, description or metadata). In ``segments.tflite`` each variant of two or more segments also gets a
signature of its own (``tflite_rewrite.with_variant_graphs``): its segments' operators in order, over the segments'
constants, so it runs as one graph, like a whole-variant graph, and stores no weight twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.bundle.segment_info import Boundary, Segment, chain_mismatch
from restnet_compile.config.device import Target
from restnet_compile.errors import RestnetError
from restnet_compile.export.base import Conversion, ExportedVariant
from restnet_compile.export.ops import check_ops, tflite_ops
from restnet_compile.export.segments import SegmentPlan, plan_segments, segment_inputs
from restnet_compile.export.tflite_convert import (
    convert_calibrated,
    signature_function,
    tensorflow_quiet,
    to_saved_model,
)
from restnet_compile.export.tflite_rewrite import compact, with_variant_graphs

SEGMENT_FILE = "seg-{id}.tflite"  # segment_file: each
SEGMENTS_FILE = "segments.tflite"  # segment_file: one


def _channels_last(x: np.ndarray) -> np.ndarray:
    return x if x.ndim < 3 else np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _loaded(seg: SegmentPlan, sample: np.ndarray, work_dir: Path):
    """The segment converted by onnx2tf and loaded: its serving function and its input shape there (batch 1)."""
    import tensorflow as tf

    onnx2tf_out = to_saved_model(seg.module, tuple(sample.shape[1:]), f"seg_{seg.id}", work_dir)
    loaded = tf.saved_model.load(str(onnx2tf_out))
    fn = loaded.signatures["serving_default"]
    (spec,) = fn.structured_input_signature[1].values()
    return loaded, fn, (1, *(int(d) for d in spec.shape[1:]))


def _saved_model(
    plans: dict[str, SegmentPlan], inputs: dict[str, np.ndarray], name: str, work_dir: Path
) -> tuple[Path, dict[str, np.ndarray]]:
    """One SavedModel with a signature per segment of ``plans``; each segment's calibration samples in its file's
    layout."""
    import tensorflow as tf

    root = tf.Module()
    signatures: dict[str, Any] = {}
    samples: dict[str, np.ndarray] = {}
    for sid, seg in plans.items():
        loaded, fn, shape = _loaded(seg, inputs[sid], work_dir)
        setattr(root, f"segment_{len(signatures)}", loaded)
        signatures[sid] = signature_function(fn, shape).get_concrete_function()
        samples[sid] = _file_layout(inputs[sid], shape, seg)
    out = work_dir / f"{name}_signatures"
    tf.saved_model.save(root, str(out), signatures=signatures)
    return out, samples


def _file_layout(x: np.ndarray, shape: tuple[int, ...], seg: SegmentPlan) -> np.ndarray:
    """``x`` (PyTorch layout) in the layout of the converted input ``shape``: channels-last first, as onnx2tf
    converts feature maps (a map whose sides all equal its channels would otherwise be ambiguous)."""
    moved = _channels_last(x)
    if tuple(moved.shape[1:]) == shape[1:]:
        return moved
    if tuple(x.shape[1:]) == shape[1:]:
        return np.ascontiguousarray(x)
    raise RestnetError(f"segment {seg.id}: onnx2tf made input {shape[1:]} from {tuple(x.shape[1:])}")


def _boundaries(model: bytes, keys: list[str]) -> dict[str, tuple[Boundary, Boundary]]:
    """The input and output boundary of every signature ``keys`` of ``model``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter, out = Interpreter(model_content=model), {}
    for key in keys:
        runner = interpreter.get_signature_runner(key)
        ((_, din),) = runner.get_input_details().items()
        ((_, dout),) = runner.get_output_details().items()
        out[key] = Boundary.from_detail(din), Boundary.from_detail(dout)
    return out


def convert_segments(
    plans: dict[str, SegmentPlan], inputs: dict[str, np.ndarray], target: Target, work_dir: Path, name: str = "segments"
) -> bytes:
    """The segments of ``plans`` as the signatures of one ``.tflite``, each calibrated on its own ``inputs`` (N x
    its PyTorch input shape); ``name`` names its SavedModel in ``work_dir``."""
    saved, samples = _saved_model(plans, inputs, name, work_dir)
    return compact(convert_calibrated(saved, samples, target, conversion_metadata=False))  # bytes on every flash


def convert_segment(seg: SegmentPlan, inputs: np.ndarray, target: Target, work_dir: Path) -> bytes:
    """The segment as one single-signature ``.tflite`` calibrated on ``inputs`` (N x the PyTorch input shape)."""
    return convert_segments({seg.id: seg}, {seg.id: inputs}, target, work_dir, f"seg_{seg.id}")


def check_chain(vid: str, chain: tuple[Segment, ...]) -> None:
    """Every segment of ``chain`` takes the shape and dtype its predecessor gives.

    Raises:
        RestnetError: two neighbours disagree (the message names both).
    """
    mismatch = chain_mismatch(chain)
    if mismatch:
        raise RestnetError(f"variant {vid}: {mismatch}")


def segment_conversions(variants: dict[str, object], calib: np.ndarray, target: Target) -> list[Conversion]:
    """The onnx2tf conversion of every segment :func:`export_segments` would write, as it would run it."""
    plans, chains = plan_segments(variants, target.segment_cuts == "every-block")  # type: ignore[arg-type]
    shapes = segment_inputs(plans, chains, calib[:1])  # one image is enough to know each segment's input shape
    return [Conversion(f"seg_{sid}", seg.module, tuple(shapes[sid].shape[1:])) for sid, seg in plans.items()]


def export_segments(
    variants: dict[str, object],
    calib: np.ndarray,
    target: Target,
    out_dir: Path,
    work_dir: Path,
    signatures: bool = True,
) -> tuple[dict[str, ExportedVariant], dict[str, bytes]]:
    """Write the segments into ``out_dir`` once every segment converted and passed the target's operator check: one
    ``seg-<id>.tflite`` per segment, or with ``segment_file: one`` every segment a signature of ``segments.tflite``,
    with a signature per variant that runs its chain as one graph. Returns each variant as its chain (and, in one
    file, the signature that runs it), and the files' bytes by file name. ``signatures`` false (TFLite Micro, which
    runs a model's first subgraph and never reads them): files of one segment each without a signature table, and
    segments whose ``signature`` is "" (the file's only graph).

    Raises:
        BadInputError: a segment uses an operator the target's runtime lacks (nothing is written then).
    """
    plans, chains = plan_segments(variants, target.segment_cuts == "every-block")  # type: ignore[arg-type]
    inputs = segment_inputs(plans, chains, calib[: target.calibration_samples])
    models: dict[str, bytes] = {}  # file name -> bytes
    exported: dict[str, Segment] = {}
    with quiet_native_output(), tensorflow_quiet():
        if target.segment_file == "one":
            models[SEGMENTS_FILE] = convert_segments(plans, inputs, target, work_dir)
            files = dict.fromkeys(plans, SEGMENTS_FILE)
        else:
            files = {sid: SEGMENT_FILE.format(id=sid) for sid in plans}
            for sid, seg in plans.items():
                models[files[sid]] = convert_segment(seg, inputs[sid], target, work_dir)
        for file, model in models.items():
            mine = [sid for sid in plans if files[sid] == file]
            for sid, (din, dout) in _boundaries(model, mine).items():
                seg = plans[sid]
                exported[sid] = Segment(
                    id=sid,
                    model=seg.model,
                    start=seg.start,
                    stop=seg.stop,
                    head=seg.head,
                    file=file,
                    signature=sid,
                    input=din,
                    output=dout,
                )
    check_ops({sid: ops for model in models.values() for sid, ops in tflite_ops(model).items()}, target)
    graphs = {vid: chain for vid, chain in chains.items() if len(chain) > 1} if target.segment_file == "one" else {}
    clash = sorted(set(graphs) & set(plans))
    if clash:
        raise RestnetError(f"variant {clash[0]} has the id of a segment; rename the variant")
    if graphs:
        models[SEGMENTS_FILE] = with_variant_graphs(models[SEGMENTS_FILE], graphs)
    if not signatures and target.segment_file == "each":
        models = {file: compact(model, signatures=False) for file, model in models.items()}
        exported = {sid: dataclasses.replace(seg, signature="") for sid, seg in exported.items()}
    for file, model in models.items():
        (out_dir / file).write_bytes(model)
    result = {}
    for vid, chain in chains.items():
        segs = tuple(exported[s] for s in chain)
        check_chain(vid, segs)
        if vid in graphs or (target.segment_file == "one" and len(segs) == 1):
            result[vid] = ExportedVariant(SEGMENTS_FILE, vid if vid in graphs else segs[0].signature, segs)
        else:
            result[vid] = ExportedVariant(None, None, segs)
    return result, models
