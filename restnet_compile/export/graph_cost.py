"""Costs of the exported graph, replacing the pre-export estimates of every shipped TFLite variant.

Before export, RAM and flash come from a trace of the PyTorch module (``cost.estimate``). Once a ``.tflite`` exists
its own execution order and tensors are the truth:

* flash = bytes of the variant's own single-signature model (its graph and the constants it reads) + the runtime's
  footprint from the profile;
* RAM = peak of live activation tensors in the exported execution order (+ the constants, where the runtime keeps
  weights in RAM) + the runtime's own RAM; on TFLite Micro the activation part is the estimated arena (liveness peak
  + TFLM's bookkeeping), and the real TFLM interpreter measures the smallest arena the variant runs in;
* the graph's operators, checked against the profile's ``ops_allow``.

The build's export stage writes these into its variants and decides again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from restnet_compile.config.device import Profile
from restnet_compile.export.graph_memory import arena_estimate, extract_signature, peak_activation_bytes, read_graphs

TFLM_RUNTIMES = {"tflite-micro", "tflm"}


@dataclass(frozen=True)
class GraphCost:
    """What one exported variant costs, read from its graph (and measured in TFLM for MCU profiles).

    Attributes:
        model_bytes: Bytes of the variant's single-signature model.
        activation_bytes: Liveness peak of its activation tensors.
        constant_bytes: Bytes of the constants it reads.
        ops: Its operators, sorted.
        arena_estimate: Estimated TFLM arena (TFLM runtimes only).
        arena_measured: Smallest arena the TFLM interpreter ran it in (TFLM runtimes only).
    """

    model_bytes: int
    activation_bytes: int
    constant_bytes: int
    ops: tuple[str, ...]
    arena_estimate: int | None = None
    arena_measured: int | None = None

    def ram_bytes(self, profile: Profile) -> int:
        """RAM on ``profile``: activations (or the TFLM arena) + constants where kept in RAM + the runtime's own."""
        tensors = self.arena_estimate if self.arena_estimate is not None else self.activation_bytes
        return tensors + (self.constant_bytes if profile.weights_in_ram else 0) + profile.runtime_ram


def chain_cost(segments: list[GraphCost], boundary_bytes: int, one_arena: bool = True) -> GraphCost:
    """Cost of a variant that runs ``segments`` one after another, carrying each boundary tensor over in a buffer of
    ``boundary_bytes``: the segments' bytes together, and the largest segment's tensors + that buffer when they share
    one arena (TFLite Micro); on LiteRT (``one_arena`` false) every segment's subgraph keeps an arena of its own,
    so their tensors add up."""

    def peak(values: list[int | None]) -> int | None:
        known = [v for v in values if v is not None]
        return max(known) + boundary_bytes if len(known) == len(values) else None

    activations = [c.activation_bytes for c in segments]
    return GraphCost(
        model_bytes=sum(c.model_bytes for c in segments),
        activation_bytes=(max(activations) if one_arena else sum(activations)) + boundary_bytes,
        constant_bytes=sum(c.constant_bytes for c in segments),
        ops=tuple(sorted({op for c in segments for op in c.ops})),
        arena_estimate=peak([c.arena_estimate for c in segments]),
        arena_measured=peak([c.arena_measured for c in segments]),
    )


def is_tflm(profile: Profile) -> bool:
    """Whether the profile's runtime is TensorFlow Lite Micro."""
    return profile.runtime.lower() in TFLM_RUNTIMES


def variant_model(path: Path, signature: str) -> bytes:
    """The single-signature model of ``signature`` in ``path`` (the file itself when it holds only that one)."""
    graphs = read_graphs(path)
    if set(graphs) in ({signature}, {"main"}):
        return path.read_bytes()
    return extract_signature(path, signature)


def graph_cost(model: bytes, signature: str, profile: Profile, measure_tflm: bool) -> GraphCost:
    """Cost of one single-signature model on ``profile``."""
    (sg,) = read_graphs(model).values()
    cost = GraphCost(len(model), peak_activation_bytes(sg), sg.constant_bytes, tuple(sg.op_names))
    if not is_tflm(profile):
        return cost
    estimate = arena_estimate(sg).total
    measured = None
    if measure_tflm:
        from restnet_compile.export.tflm_check import smallest_arena

        upper = max(profile.arena or profile.ram, 2 * estimate)
        measured = smallest_arena(model, upper, n_inputs=len(sg.inputs))
    return dataclasses.replace(cost, arena_estimate=estimate, arena_measured=measured)
