"""Interpreter backends for the runtime: LiteRT (TFLite signatures) and ONNX Runtime. Imported lazily."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from restnet_compile._util.quiet import quiet_native_output


class Backend(Protocol):
    """Runs one signature / graph of one model file on a batch of 1 in the model's layout."""

    def run(self, file: str, signature: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Float input in the model's layout -> float logits."""
        ...


def _quantize(x: np.ndarray[Any, Any], detail: dict[str, Any]) -> np.ndarray[Any, Any]:
    scale, zero = detail["quantization"]
    if detail["dtype"] == np.float32 or scale == 0:
        return x.astype(np.float32)
    info = np.iinfo(detail["dtype"])
    return np.asarray(np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"]))


def _dequantize(y: np.ndarray[Any, Any], detail: dict[str, Any]) -> np.ndarray[Any, Any]:
    scale, zero = detail["quantization"]
    if y.dtype == np.float32 or scale == 0:
        return y.astype(np.float32)
    return np.asarray((y.astype(np.float32) - zero) * scale, dtype=np.float32)


class _FirstSubgraph:
    """A model's first subgraph called like a signature runner, for files without signatures (TFLite Micro
    segments)."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter, self.allocated = interpreter, False  # allocated on the first run, as a signature runner is
        (self.input,), (self.output,) = interpreter.get_input_details(), interpreter.get_output_details()

    def get_input_details(self) -> dict[str, Any]:
        return {"input": self.input}

    def get_output_details(self) -> dict[str, Any]:
        return {"output": self.output}

    def __call__(self, **inputs: np.ndarray[Any, Any]) -> dict[str, Any]:
        (x,) = inputs.values()
        if not self.allocated:
            self.interpreter.allocate_tensors()
            self.allocated = True
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return {"output": self.interpreter.get_tensor(self.output["index"])}


def _first_call(runner: Any, in_name: str, in_detail: dict[str, Any]) -> None:
    """Run a runner once on zeros: LiteRT allocates tensors and applies its delegate (and logs it) on the first call."""
    shape = tuple(int(d) for d in in_detail["shape"])
    runner(**{in_name: np.zeros(shape, dtype=in_detail["dtype"])})


class LiteRTBackend:
    """One interpreter per .tflite file (a multi-signature bundle has one); one cached runner per signature."""

    def __init__(self, root: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # older devices
            from tflite_runtime.interpreter import Interpreter
        self._make: Callable[[Path], Any] = lambda path: Interpreter(model_path=str(path), num_threads=threads)
        self.root = root
        self.interpreters: dict[str, Any] = {}
        self._runners: dict[tuple[str, str], tuple[Any, dict[str, Any], dict[str, Any], str, str]] = {}

    def _runner(self, file: str, signature: str) -> tuple[Any, dict[str, Any], dict[str, Any], str, str]:
        key = (file, signature)
        if key not in self._runners:
            with quiet_native_output():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU." and the like
                if file not in self.interpreters:
                    self.interpreters[file] = self._make(self.root / file)
                interpreter = self.interpreters[file]
                if interpreter.get_signature_list():
                    runner = interpreter.get_signature_runner(signature)
                else:  # a TFLite Micro segment: no signature table, one graph
                    runner = _FirstSubgraph(interpreter)
                ((in_name, in_detail),) = runner.get_input_details().items()
                ((out_name, out_detail),) = runner.get_output_details().items()
                _first_call(runner, in_name, in_detail)  # allocates tensors and applies the delegate, quietly
            self._runners[key] = (runner, in_detail, out_detail, in_name, out_name)
        return self._runners[key]

    def io_details(self, file: str, signature: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The signature's input and output details (shape, dtype, quantization)."""
        _, in_detail, out_detail, _, _ = self._runner(file, signature)
        return in_detail, out_detail

    def run_raw(self, file: str, signature: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The signature's raw output for an input already in its dtype (batch 1)."""
        runner, _, _, in_name, out_name = self._runner(file, signature)
        return np.asarray(runner(**{in_name: x})[out_name])

    def run(self, file: str, signature: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        runner, in_detail, out_detail, in_name, out_name = self._runner(file, signature)
        q = _quantize(x, in_detail)
        if len(q) > 1 and int(in_detail["shape"][0]) == 1:
            # exported for batch 1, as devices run it: resizing the input can fail (XNNPACK cannot reshape a mixed
            # int8 / float attention graph), so a batch is run one image at a time
            outs = [runner(**{in_name: q[i : i + 1]})[out_name] for i in range(len(q))]
            return _dequantize(np.concatenate(outs), out_detail)
        out = runner(**{in_name: q})[out_name]
        return _dequantize(out, out_detail)


class OnnxRuntimeBackend:
    """One ONNX Runtime session per variant file, created on first use and kept."""

    def __init__(self, root: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.root = root
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = threads
        self.options.inter_op_num_threads = 1
        self._ort = ort
        self._sessions: dict[str, Any] = {}

    def run(self, file: str, signature: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if file not in self._sessions:
            self._sessions[file] = self._ort.InferenceSession(
                str(self.root / file), self.options, providers=["CPUExecutionProvider"]
            )
        session = self._sessions[file]
        name = session.get_inputs()[0].name
        return np.asarray(session.run(None, {name: x.astype(np.float32)})[0])
