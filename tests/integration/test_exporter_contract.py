"""The contract every registered exporter keeps, checked on each one alike (a template test: a new exporter is
tested by adding its target below).

``export()`` returns one entry per variant it was given, each naming a file it wrote and the graph that runs the
variant in one call, or a chain of segments whose files it wrote; what it writes runs within the target's parity
tolerance of PyTorch; and exporting the same variants twice writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restnet_compile._util.torch_state import deterministic
from restnet_compile.config.device import Target, load_target
from restnet_compile.data import load_dataset
from restnet_compile.export import EXPORTERS, ExportedVariant, Exporter
from restnet_compile.export.parity import check_parity, torch_logits
from restnet_compile.models import create_model
from restnet_compile.runtime.backends import LiteRTBackend, OnnxRuntimeBackend
from restnet_compile.runtime.chain import run_chain

#: The built-in target each exporter is checked on (one variant keeps the test short; the builds check many).
TARGETS = {"onnx": "onnx-fp32", "tflite": "tflite-int8", "tflm": "tflm-int8"}
IMAGES = 64


def test_every_registered_exporter_is_checked() -> None:
    assert sorted(TARGETS) == sorted(EXPORTERS.names())


class _Runner:
    """Runs what an exporter wrote, as the runtime does (one graph per call, or a chain of segments)."""

    def __init__(self, exporter: Exporter, root: Path, exported: dict[str, ExportedVariant]) -> None:
        self.layout, self.exported = exporter.layout, exported
        self.backend: Any = OnnxRuntimeBackend(root) if isinstance(exporter, EXPORTERS.get("onnx")) else None
        self.backend = self.backend or LiteRTBackend(root)

    def run(self, images: np.ndarray, variant: str) -> np.ndarray:
        ev = self.exported[variant]
        x = images.transpose(0, 2, 3, 1) if self.layout == "NHWC" else images
        if ev.signature is None:
            segments = list(ev.chain)
            return np.concatenate([run_chain(self.backend, segments, xi[None]) for xi in x])
        return np.concatenate([self.backend.run(ev.file, ev.signature, xi[None]) for xi in x])


def _export(name: str, target: Target, out: Path, work: Path) -> tuple[Exporter, dict[str, ExportedVariant]]:
    model = create_model("demo-small-cnn")
    calib = load_dataset("mnist5k").images[:IMAGES]
    out.mkdir()
    work.mkdir()
    exporter = EXPORTERS.get(name)()
    with deterministic(0, 1):
        exported = exporter.export({"small": model}, model.input_shape, np.asarray(calib), target, out, work)
    return exporter, exported


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_an_exporter_keeps_the_contract(name: str, tmp_path: Path) -> None:
    target = load_target(TARGETS[name])
    assert target.exporter == name
    exporter, exported = _export(name, target, tmp_path / "a", tmp_path / "work-a")

    assert list(exported) == ["small"]
    ev = exported["small"]
    named = {s.file for s in ev.chain} | ({ev.file} if ev.file is not None else set())
    assert (ev.file is None) == (ev.signature is None)  # one call needs a file and a graph; without, a chain runs
    assert ev.file is not None or ev.chain, "a variant needs a file or a chain"
    written = _files(tmp_path / "a")
    assert named and named <= set(written)  # every file it names was written
    assert all(s.model_bytes == 0 and s.arena_bytes is None for s in ev.chain)  # costs are the build's to record

    data = load_dataset("mnist5k")
    images, labels = np.asarray(data.images[:IMAGES]), data.labels[:IMAGES]
    model = create_model("demo-small-cnn")
    runner = _Runner(exporter, tmp_path / "a", exported)
    result = check_parity(runner, "small", torch_logits(model, images), images, labels, target)
    assert not result.failures, result.failures

    _export(name, target, tmp_path / "b", tmp_path / "work-b")
    assert _files(tmp_path / "b") == written  # byte-identical
