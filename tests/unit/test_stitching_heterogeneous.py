"""Heterogeneous stitching on the demo zoo: CNN -> transformer, transformer -> CNN, and the small -> large order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.data import Splits, load_dataset, make_splits
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.pipeline.candidates import candidate_rule, plan
from restnet_compile.pipeline.cka import compute_cka
from restnet_compile.pipeline.costs import accuracy
from restnet_compile.stitching import Candidate, StitchPoint, build_stitched

pytestmark = pytest.mark.usefixtures("fast_cpu_math")


@pytest.fixture(scope="module")
def splits() -> Splits:
    full = make_splits(load_dataset("mnist5k"), seed=0)
    return Splits(
        train=full.train.subset(np.arange(400), "train400"),
        calib=full.calib.subset(np.arange(200), "calib200"),
        val=full.val.subset(np.arange(200), "val200"),
        test=full.test.subset(np.arange(300), "test300"),
    )


@pytest.fixture(scope="module")
def zoo() -> dict[str, BlockSequence]:
    return {n: create_model(n) for n in ("demo-large-cnn", "demo-small-cnn", "demo-vit")}


# a 2-epoch smoke test (measured: ViT -> CNN at 75 and 83 % test accuracy, CNN -> ViT at 91 and 96 %)
TUNE = TuneSettings(epochs=2, lr=1e-3, batch_size=64, patience=2)


@pytest.mark.parametrize(
    ("front", "back", "point", "adapter"),
    [
        ("demo-large-cnn", "demo-vit", StitchPoint(4, 2), "map-to-tokens"),
        ("demo-large-cnn", "demo-vit", StitchPoint(1, 0), "map-to-tokens"),
        ("demo-vit", "demo-small-cnn", StitchPoint(1, 1), "tokens-to-map-mlp"),
        ("demo-vit", "demo-small-cnn", StitchPoint(2, 2), "tokens-to-map-mlp"),
    ],
)
def test_heterogeneous_stitch_builds_and_tunes(zoo, splits: Splits, front: str, back: str, point, adapter: str) -> None:  # type: ignore[no-untyped-def]
    f, b = zoo[front], zoo[back]
    before = {k: v.clone() for k, v in {**f.state_dict(), **{f"b.{k}": v for k, v in b.state_dict().items()}}.items()}
    sv = build_stitched(f, b, Candidate(point, adapter, 0.0), splits, TUNE, seed=0)
    assert type(sv.net.adapter).__name__.lower().replace("adapter", "") == adapter.replace("-", "")
    assert sv.ls_r2 > 0.2  # the closed-form fit explains a good part of the target block's features
    assert sv.tune.val_accuracy >= sv.tune.val_accuracy_init
    acc = accuracy(sv.net, splits.test.images, splits.test.labels)
    assert acc > 0.5  # ten classes: chance is 0.1 (400 training images, 2 epochs)
    x = torch.from_numpy(splits.test.images[:4])
    with torch.no_grad():
        manual = b.head(
            b.run_blocks(sv.net.adapter(f.run_blocks(x, 0, point.front_block + 1)), point.back_block + 1, 4)
        )
        assert torch.allclose(sv.net(x), manual, atol=1e-5)
    after = {**f.state_dict(), **{f"b.{k}": v for k, v in b.state_dict().items()}}
    assert all(torch.equal(before[k], after[k]) for k in before)  # donors untouched


def test_cnn_transformer_cka_matrix_and_plan(zoo, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    large, vit = zoo["demo-large-cnn"], zoo["demo-vit"]
    cka = compute_cka(large, vit, splits.calib.images, 100)
    assert cka.shape == (6, 4)
    assert np.isfinite(cka).all() and (cka > 0).all()
    config = BuildConfig(large="demo-large-cnn", small="demo-vit")
    p = plan(config, cka, large, vit)
    _rule, cands, front, back = p.rule, p.candidates, p.front, p.back
    assert front is large and back is vit
    assert cands and {c.adapter for c in cands} == {"map-to-tokens"}


def test_small_to_large_order_stitches_small_prefix_to_large_suffix(zoo, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    large, small = zoo["demo-large-cnn"], zoo["demo-small-cnn"]
    cka = compute_cka(large, small, splits.calib.images, 100)
    config = BuildConfig(plan={"order": "small-large"})
    p = plan(config, cka, large, small)
    rule, cands, front, back = p.rule, p.candidates, p.front, p.back
    assert candidate_rule(rule).order == "small-large"
    assert front is small and back is large
    assert cands
    for c in cands:
        assert c.point.variant_id == f"S{c.point.front_block}-L{c.point.back_block}"
        assert c.cka == pytest.approx(float(cka[c.point.back_block, c.point.front_block]))
    c = cands[-1]
    sv = build_stitched(small, large, c, splits, TUNE, seed=0, teacher=large)
    assert len(sv.net.prefix) == c.point.front_block + 1
    assert len(sv.net.suffix) == 6 - c.point.back_block - 1
    assert accuracy(sv.net, splits.test.images, splits.test.labels) > 0.7
