"""A variant dropped for its parity takes no part in the selection: the rest is decided again without it."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import load_profile
from restnet_compile.cost.estimate import CostReport
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.state import Variant


def _variant(vid: str, kind: str, latency: float, acc: float) -> Variant:
    cost = CostReport(
        flops=int(latency * 1e6), params=1, ram_bytes=1000, model_bytes=1000, flash_bytes=1000, latency_ms=latency
    )
    return Variant(vid, kind, nn.Identity(), {}, acc, acc, cost)


def test_a_parity_failure_leaves_the_selection_and_what_it_dominated_ships() -> None:
    profile, config = load_profile("phone"), BuildConfig.model_validate({})
    variants = [
        _variant("large", "anchor-large", 2.0, 0.95),
        _variant("small", "anchor-small", 0.5, 0.80),
        _variant("L1-S1", "stitched", 1.0, 0.92),
        _variant("L2-S1", "stitched", 1.2, 0.90),  # dominated by L1-S1 (slower, less accurate)
    ]
    first = {v.id: v.decision for v in decide(variants, profile, config, 500)}
    assert first["L1-S1"].selected and not first["L2-S1"].selected  # type: ignore[union-attr]
    why = "fails parity on tflite-int8: int8 top-1 agreement 97.9% < 98%"
    marked = [dataclasses.replace(v, parity_failure=why) if v.id == "L1-S1" else v for v in variants]
    again = {v.id: v.decision for v in decide(marked, profile, config, 500)}
    assert again["L1-S1"] is not None and not again["L1-S1"].selected and again["L1-S1"].reasons == (why,)
    assert again["L2-S1"] is not None and again["L2-S1"].selected  # no longer dominated
    assert again["large"].selected and again["small"].selected  # type: ignore[union-attr]


def test_nothing_left_after_parity_drops_is_infeasible_for_decide() -> None:
    from restnet_compile.errors import InfeasibleError

    profile, config = load_profile("phone"), BuildConfig.model_validate({})
    only = [dataclasses.replace(_variant("L1-S1", "stitched", 1.0, 0.9), parity_failure="fails parity")]
    with pytest.raises(InfeasibleError):
        decide(only, profile, config, 500)


def _analysis(strict: bool) -> object:
    from types import SimpleNamespace

    from restnet_compile.config.device import load_target
    from restnet_compile.pipeline.state import Analysis

    variants = [
        _variant("large", "anchor-large", 2.0, 0.95),
        _variant("small", "anchor-small", 0.5, 0.80),
        _variant("L1-S1", "stitched", 1.0, 0.92),
    ]
    config = BuildConfig.model_validate({"strict_parity": strict})
    splits = SimpleNamespace(val=[0] * 500)
    return Analysis(config, load_profile("phone"), load_target("tflite-int8"), None, None, splits, None, None, variants)  # type: ignore[arg-type]


def test_judging_failures_drops_stitches_and_refuses_anchors_and_strict_builds() -> None:
    from restnet_compile._util.progress import as_reporter
    from restnet_compile.errors import ParityError
    from restnet_compile.pipeline.parity import ParityDrops, _judge, drop_variants

    said: list[str] = []
    a = _analysis(strict=False)
    drops = _judge(a, {"L1-S1": "int8 top-1 agreement 97.9% < 98%"})  # type: ignore[arg-type]
    assert drops == ParityDrops({"L1-S1": "int8 top-1 agreement 97.9% < 98%"})
    after = drop_variants(a, drops, as_reporter(said.append))  # type: ignore[arg-type]
    dropped = next(v for v in after.variants if v.id == "L1-S1")
    assert dropped.decision.reasons == ("fails parity on tflite-int8: int8 top-1 agreement 97.9% < 98%",)  # type: ignore[union-attr]
    assert any("L1-S1 dropped on tflite-int8" in line for line in said)
    with pytest.raises(ParityError, match="variant small fails parity on target tflite-int8: int8 accuracy drop"):
        _judge(a, {"L1-S1": "x", "small": "int8 accuracy drop 2.0% > 1%"})  # type: ignore[arg-type]
    with pytest.raises(ParityError, match="variant L1-S1 fails parity on target tflite-int8: y"):
        _judge(_analysis(strict=True), {"L1-S1": "y"})  # type: ignore[arg-type]
    gone = dataclasses.replace(a, variants=[dataclasses.replace(v, parity_failure="z") for v in a.variants])  # type: ignore[type-var]
    with pytest.raises(ParityError, match="no variant that fits profile phone passes parity on tflite-int8"):
        drop_variants(
            dataclasses.replace(gone, variants=gone.variants[2:]), ParityDrops({"L1-S1": "w"}), as_reporter(said.append)
        )
