"""Costs of the exported graph, replacing the pre-export estimates of every shipped TFLite variant.

Before export, RAM and flash come from a trace of the PyTorch module (``cost.estimate``). Once a ``.tflite`` exists
its own execution order and tensors are the truth:

* flash = bytes of the variant's own single-signature model (its graph and the constants it reads) + the runtime's
  footprint from the profile;
* RAM = peak of live activation tensors in the exported execution order (+ the constants, where the runtime keeps
  weights in RAM) + the runtime's own RAM; on TFLite Micro the activation part is the estimated arena (liveness peak
  + TFLM's bookkeeping), and the real TFLM interpreter measures the smallest arena the variant runs in;
* the graph's operators, checked against the profile's ``ops_allow``.

:func:`refine_costs` writes these into the variants and decides again; the caller re-exports when a shipped variant
no longer fits, so every variant that ships has been checked on its exported graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from restnet_compile.config.device import Profile, Target
from restnet_compile.export.base import ExportedVariant
from restnet_compile.export.graph_memory import arena_estimate, extract_signature, peak_activation_bytes, read_graphs

if TYPE_CHECKING:
    from restnet_compile.pipeline.stages import Variant

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


def refine_costs(
    variants: list[Variant],
    bundle_dir: Path,
    exported: dict[str, ExportedVariant],
    profile: Profile,
    target: Target,
    pareto: bool,
    progress: Callable[[str], None] = lambda _: None,
) -> bool:
    """Replace the estimates of exported TFLite variants by their graph costs and decide again.

    Returns:
        True when the set of shipped variants changed (the caller must export again).
    """
    from restnet_compile.pipeline.stages import decide

    before = {v.id for v in variants if v.decision and v.decision.selected}
    for v in variants:
        ex = exported.get(v.id)
        if ex is None or not ex.file.endswith(".tflite"):
            continue
        model = variant_model(bundle_dir / ex.file, ex.signature)
        gc = graph_cost(model, ex.signature, profile, measure_tflm=is_tflm(profile) and target.dtype == "int8")
        v.cost = dataclasses.replace(
            v.cost,
            ram_bytes=gc.ram_bytes(profile),
            model_bytes=gc.model_bytes,
            flash_bytes=gc.model_bytes + profile.runtime_flash,
            ram_source="tflite-graph",
            arena_bytes=gc.arena_estimate,
            arena_measured=gc.arena_measured,
            ops=gc.ops,
        )
        if gc.arena_measured is not None:
            progress(
                f"  TFLM arena {v.id}: measured {gc.arena_measured:,} B, estimated {gc.arena_estimate:,} B "
                f"({(gc.arena_estimate or 0) / gc.arena_measured - 1:+.1%})"
            )
    decide(variants, profile, pareto=pareto)
    after = {v.id for v in variants if v.decision and v.decision.selected}
    if after != before:
        progress(f"  exported graphs changed the selection: {', '.join(sorted(before ^ after))}; exporting again")
    return after != before
