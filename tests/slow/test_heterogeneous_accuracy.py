"""Slow (`make test-slow`): heterogeneous stitches on the demo zoo beat the small model of their pair.

Full splits and the default tuning (both donors frozen, adapter only), one planned candidate per direction, measured
on the 1,000-image test split, whose binomial noise is about +-0.7 points at 95 %: the margin asked for is 1.5 points.
"""

from __future__ import annotations

import pytest

from restnet_compile._util.torch_state import deterministic
from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.stitching import build_stitched

pytestmark = pytest.mark.slow


def _stitch(config: BuildConfig, variant: str) -> tuple[float, float, object]:
    large, small = load_models(config)
    splits = load_splits(config, large)
    cka = compute_cka(large, small, splits.calib.images, 100)
    p = plan(config, cka, large, small)
    candidate = next(c for c in p.candidates if c.point.variant_id == variant)  # the plan proposes it
    sv = build_stitched(p.front, p.back, candidate, splits, TuneSettings(), seed=0, teacher=large)
    test = splits.test
    return accuracy(sv.net, test.images, test.labels), accuracy(small, test.images, test.labels), sv


@pytest.mark.parametrize(
    ("order", "variant", "adapter"),
    [
        ("large-small", "L4-S2", "map-to-tokens"),  # CNN prefix -> ViT suffix (ReStNet order)
        ("small-large", "S0-L1", "tokens-to-map-mlp"),  # ViT prefix -> CNN suffix (SN-Net order)
    ],
)
def test_cnn_transformer_stitch_beats_the_vit(order: str, variant: str, adapter: str) -> None:
    config = BuildConfig(large="demo-large-cnn", small="demo-vit", plan={"order": order})
    # seed, threads and float flags as a build sets them, whatever earlier tests in this process left behind
    with deterministic(config.seed, config.threads):
        stitched, vit, sv = _stitch(config, variant)
    assert sv.candidate.adapter == adapter
    assert stitched > vit + 0.015, f"{variant}: {stitched:.3f} vs demo-vit {vit:.3f}"
