"""Adapters, least-squares init, candidate planning, stitched networks and adapter-only tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnet_compile.config.build import PlanSettings, TuneSettings
from restnet_compile.data import Splits, load_dataset, make_splits
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence, FeatureSpec, create_model
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint, plan_candidates
from restnet_compile.stitching.adapters import Conv1x1Adapter, adapter_for, solve_least_squares
from restnet_compile.stitching.tuning.loop import cache_split, cached_accuracy, tune_adapter


def m(c: int, h: int, w: int | None = None) -> FeatureSpec:
    return FeatureSpec("map", (c, h, h if w is None else w))


# --- least squares -------------------------------------------------------------------------------------------------


def test_solve_least_squares_recovers_linear_map_and_bias() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    w_true = rng.normal(size=(6, 3))
    b_true = np.array([1.5, -2.0, 0.25])
    y = x @ w_true + b_true
    w, b, r2 = solve_least_squares(x.astype(np.float32), y.astype(np.float32), ridge=1e-10)
    assert w.shape == (6, 3)
    assert b.shape == (3,)
    assert np.allclose(w, w_true, atol=1e-4)
    assert np.allclose(b, b_true, atol=1e-4)
    assert r2 == pytest.approx(1.0, abs=1e-6)


def test_solve_least_squares_r2_is_low_for_unrelated_targets() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    y = rng.normal(size=(2000, 2))
    _, b, r2 = solve_least_squares(x, y, ridge=1e-4)
    assert r2 < 0.02
    assert np.allclose(b, y.mean(0), atol=0.1)


def test_solve_least_squares_ridge_shrinks_weights() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5))
    y = x @ rng.normal(size=(5, 2)) + 0.1 * rng.normal(size=(300, 2))
    w_small, _, r2_small = solve_least_squares(x, y, ridge=1e-6)
    w_big, _, r2_big = solve_least_squares(x, y, ridge=10.0)
    assert np.linalg.norm(w_big) < 0.5 * np.linalg.norm(w_small)
    assert r2_big < r2_small


# --- adapters ------------------------------------------------------------------------------------------------------


def test_conv1x1_resizes_28_to_14() -> None:
    adapter = Conv1x1Adapter(m(32, 28), m(16, 14))
    assert adapter.pool == 2
    out = adapter(torch.randn(3, 32, 28, 28))
    assert out.shape == (3, 16, 14, 14)


def test_conv1x1_same_resolution_does_not_pool() -> None:
    adapter = Conv1x1Adapter(m(8, 7), m(4, 7))
    assert adapter.pool == 1
    assert adapter(torch.randn(2, 8, 7, 7)).shape == (2, 4, 7, 7)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (m(32, 28), m(16, 12)),  # 28 / 12 is not an integer
        (m(32, 7), m(16, 14)),  # up-sampling
        (m(32, 28), m(16, 14, 7)),  # different factors in H and W
        (m(32, 28), FeatureSpec("tokens", (50, 64))),  # map -> tokens
        (FeatureSpec("tokens", (50, 64)), m(16, 14)),
    ],
)
def test_conv1x1_refuses_incompatible_specs(src: FeatureSpec, dst: FeatureSpec) -> None:
    with pytest.raises(BadInputError, match="conv1x1"):
        Conv1x1Adapter(src, dst)
    # map <-> tokens pairs are joined by the token adapters (test_adapters_tokens.py), never by conv1x1
    assert adapter_for(src, dst) is None if src.kind == dst.kind else adapter_for(src, dst) != "conv1x1"


def test_adapter_for_compatible_specs() -> None:
    assert "conv1x1" in ADAPTERS.names()
    assert adapter_for(m(32, 28), m(16, 14)) == "conv1x1"
    assert adapter_for(m(64, 7), m(32, 7)) == "conv1x1"


def test_unknown_adapter_name_lists_choices() -> None:
    with pytest.raises(BadInputError, match=r"valid choices: .*conv1x1"):
        ADAPTERS.get("nope")


def test_conv1x1_least_squares_init_recovers_known_adapter() -> None:
    torch.manual_seed(0)
    src, dst = m(6, 8), m(4, 4)
    teacher = Conv1x1Adapter(src, dst)
    x = torch.randn(64, 6, 8, 8)
    with torch.no_grad():
        y = teacher(x)
    student = Conv1x1Adapter(src, dst)
    r2 = student.least_squares_init(x, y, ridge=1e-10)
    assert r2 == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(student.conv.weight, teacher.conv.weight, atol=1e-4)
    assert torch.allclose(student.conv.bias, teacher.conv.bias, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(student(x), y, atol=1e-4)


# --- planning ------------------------------------------------------------------------------------------------------

# Shapes of the demo pair: front 28-14-14-7-7-7, back 14-14-7-7.
FRONT = [m(32, 28), m(32, 14), m(64, 14), m(64, 7), m(128, 7), m(128, 7)]
BACK = [m(8, 14), m(16, 14), m(32, 7), m(32, 7)]


def _rel_gap(i: int, j: int, n_f: int = len(FRONT), n_b: int = len(BACK)) -> float:
    return abs((i + 1) / n_f - (j + 1) / n_b)


def _hand_cka() -> np.ndarray:
    cka = np.full((6, 4), 0.1)
    cka[0, 0] = 0.50
    cka[0, 2] = 0.99  # best for cut 0, but 0.58 away in relative depth
    cka[1, 1] = 0.60
    cka[1, 0] = 0.55
    cka[2, 1] = 0.70
    cka[2, 2] = 0.65
    cka[3, 0] = 0.98  # 7x7 -> 14x14 cannot be adapted
    cka[3, 1] = 0.97
    cka[3, 2] = 0.40
    cka[4, 2] = 0.80
    cka[5, 3] = 1.00  # the last front block is never a cut, the last back block never resumed
    return cka


def _points(cands) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return [(c.point.front_block, c.point.back_block) for c in cands]


def test_plan_default_rule_on_hand_made_matrix() -> None:
    cands = plan_candidates(_hand_cka(), FRONT, BACK, PlanSettings())
    assert _points(cands) == [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2)]
    assert [c.cka for c in cands] == pytest.approx([0.50, 0.60, 0.70, 0.40, 0.80])
    assert all(c.adapter == "conv1x1" for c in cands)
    assert all(isinstance(c.cka, float) for c in cands)


def test_plan_wide_depth_band_admits_far_blocks() -> None:
    cands = plan_candidates(_hand_cka(), FRONT, BACK, PlanSettings(depth_band=1.0))
    assert (0, 2) in _points(cands)
    assert (0, 0) not in _points(cands)


def test_plan_narrow_depth_band() -> None:
    rule = PlanSettings(depth_band=0.1)
    cands = plan_candidates(_hand_cka(), FRONT, BACK, rule)
    for i, j in _points(cands):
        assert _rel_gap(i, j) <= 0.1
    # cut 1 (1/3 deep) is more than 0.1 from every back block 1/4, 1/2, 3/4 except block 0 (0.083)
    assert _points(cands) == [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2)]


def test_plan_respects_min_suffix_blocks() -> None:
    cands = plan_candidates(_hand_cka(), FRONT, BACK, PlanSettings(min_suffix_blocks=2))
    assert all(len(BACK) - 1 - j >= 2 for _, j in _points(cands))
    # cuts 3 and 4 have 7x7 outputs and only 14x14 blocks leave two blocks after them: no candidate
    assert _points(cands) == [(0, 0), (1, 1), (2, 1)]


def test_plan_never_up_samples() -> None:
    cands = plan_candidates(_hand_cka(), FRONT, BACK, PlanSettings(depth_band=1.0))
    cut3 = [c for c in cands if c.point.front_block == 3]
    assert len(cut3) == 1
    assert cut3[0].point.back_block == 2  # not 0 or 1 (14x14), however high their CKA


def test_plan_max_candidates_keeps_highest_cka_in_cut_order() -> None:
    cands = plan_candidates(_hand_cka(), FRONT, BACK, PlanSettings(max_candidates=2))
    assert _points(cands) == [(2, 1), (4, 2)]


def test_plan_with_no_compatible_blocks_is_empty() -> None:
    front = [m(8, 7), m(8, 7)]
    back = [m(8, 14), m(8, 14), m(8, 14)]
    assert plan_candidates(np.ones((2, 3)), front, back, PlanSettings(depth_band=1.0)) == []


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "rule",
    [
        PlanSettings(),
        PlanSettings(depth_band=0.2, min_suffix_blocks=1, max_candidates=3),
        PlanSettings(depth_band=0.6, min_suffix_blocks=2, max_candidates=8),
    ],
)
def test_plan_invariants_on_random_matrices(seed: int, rule: PlanSettings) -> None:
    cka = np.random.default_rng(seed).uniform(0, 1, size=(6, 4))
    cands = plan_candidates(cka, FRONT, BACK, rule)
    cuts = [c.point.front_block for c in cands]
    assert cuts == sorted(set(cuts))  # one candidate per cut, ordered by cut
    assert len(cands) <= rule.max_candidates
    for c in cands:
        i, j = c.point.front_block, c.point.back_block
        assert 0 <= i < len(FRONT) - 1
        assert len(BACK) - 1 - j >= rule.min_suffix_blocks
        assert _rel_gap(i, j) <= rule.depth_band
        assert adapter_for(FRONT[i], BACK[j]) == c.adapter
        allowed = [
            jj
            for jj in range(len(BACK) - rule.min_suffix_blocks)
            if _rel_gap(i, jj) <= rule.depth_band and adapter_for(FRONT[i], BACK[jj]) is not None
        ]
        assert c.cka == pytest.approx(max(cka[i, jj] for jj in allowed))


def test_stitch_point_variant_id() -> None:
    assert StitchPoint(1, 0).variant_id == "L1-S0"
    assert StitchPoint(4, 2).variant_id == "L4-S2"


# --- stitched networks and tuning ----------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("fast_cpu_math")


@pytest.fixture(scope="module")
def splits() -> Splits:
    full = make_splits(load_dataset("mnist5k"), seed=0)
    idx = np.arange(200)
    return Splits(
        train=full.train.subset(idx, "train200"),
        calib=full.calib.subset(idx, "calib200"),
        val=full.val.subset(idx, "val200"),
        test=full.test.subset(idx, "test200"),
    )


@pytest.fixture(scope="module")
def models() -> tuple[BlockSequence, BlockSequence]:
    return create_model("demo-large-cnn"), create_model("demo-small-cnn")


@pytest.fixture(scope="module")
def caches(models, splits: Splits):  # type: ignore[no-untyped-def]
    """Cached prefix features of the train and val splits, per front cut (as build_stitched shares them)."""
    front, back = models
    out = {}
    for i in (1, 2):
        net = _stitched(StitchPoint(i, 1), front, back)
        out[i] = (cache_split(net, front, splits.train), cache_split(net, front, splits.val))
    return out


def _stitched(
    point: StitchPoint, front: BlockSequence, back: BlockSequence, ls_calib: Splits | None = None
) -> StitchedNet:
    adapter = Conv1x1Adapter(front.feature_specs()[point.front_block], back.feature_specs()[point.back_block])
    net = StitchedNet(front, back, point, adapter).eval()
    if ls_calib is not None:
        with torch.no_grad():
            x = torch.from_numpy(ls_calib.calib.images)
            adapter.least_squares_init(net.prefix(x), back.run_blocks(x, 0, point.back_block + 1))
    return net


@pytest.mark.parametrize("point", [StitchPoint(0, 0), StitchPoint(1, 1), StitchPoint(2, 2), StitchPoint(4, 2)])
def test_stitched_net_output_shape(point: StitchPoint, models, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    net = _stitched(point, *models)
    assert len(net.prefix) == point.front_block + 1
    assert len(net.suffix) == 4 - point.back_block - 1
    with torch.no_grad():
        out = net(torch.from_numpy(splits.test.images[:8]))
    assert out.shape == (8, 10)
    assert torch.isfinite(out).all()


def test_stitching_a_model_to_itself_with_identity_adapter_is_the_model(models, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    small = models[1]
    spec = small.feature_specs()[1]
    adapter = Conv1x1Adapter(spec, spec)
    with torch.no_grad():
        adapter.conv.weight.copy_(torch.eye(spec.channels)[:, :, None, None])
        adapter.conv.bias.zero_()
    net = StitchedNet(small, small, StitchPoint(1, 1), adapter).eval()
    x = torch.from_numpy(splits.test.images[:16])
    with torch.no_grad():
        assert torch.allclose(net(x), small(x), atol=1e-5)


def test_least_squares_init_gives_a_usable_stitch(models, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = _stitched(StitchPoint(2, 1), *models, ls_calib=splits)
    x, y = torch.from_numpy(splits.test.images), splits.test.labels
    with torch.no_grad():
        acc = float((net(x).argmax(1).numpy() == y).mean())
    assert acc > 0.5


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cache_split_contents(models, caches, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    front = models[0]
    train, val = caches[1]
    assert train.feats.shape == (200, 32, 14, 14)
    assert train.teacher.shape == (200, 10)
    assert torch.equal(val.labels, torch.from_numpy(splits.val.labels))
    with torch.no_grad():
        x = torch.from_numpy(splits.train.images[:10])
        assert torch.allclose(train.teacher[:10], front(x), atol=1e-5)  # distillation targets: the front's logits
        assert torch.allclose(train.feats[:10], front.run_blocks(x, 0, 2), atol=1e-6)


def test_tune_adapter_changes_only_the_adapter(models, caches, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    front, back = models
    torch.manual_seed(0)
    net = _stitched(StitchPoint(1, 1), front, back, ls_calib=splits)
    train, val = caches[1]
    frozen = {"prefix": _snapshot(net.prefix), "suffix": _snapshot(net.suffix), "head": _snapshot(net.head)}
    whole = {"front": _snapshot(front), "back": _snapshot(back)}
    adapter_before = _snapshot(net.adapter)

    result = tune_adapter(net, train, val, TuneSettings(epochs=1, lr=1e-3, batch_size=32), seed=0)

    assert result.epochs_run == 1
    assert result.best_epoch == 1  # tuning helped, so the tuned adapter is the one kept
    assert result.val_accuracy > result.val_accuracy_init
    assert not _same(adapter_before, _snapshot(net.adapter))
    for name, module in (("prefix", net.prefix), ("suffix", net.suffix), ("head", net.head)):
        assert _same(frozen[name], _snapshot(module)), f"{name} changed"  # BatchNorm running stats included
    assert _same(whole["front"], _snapshot(front))
    assert _same(whole["back"], _snapshot(back))
    assert all(not p.requires_grad for p in net.adapter.parameters())
    assert cached_accuracy(net, val) == pytest.approx(result.val_accuracy, abs=1e-4)


@pytest.mark.parametrize("epochs", [1, 3])
def test_tune_adapter_never_returns_worse_than_init(models, caches, splits: Splits, epochs: int) -> None:  # type: ignore[no-untyped-def]
    # a huge learning rate wrecks the least-squares adapter; tuning must fall back to the initial state
    torch.manual_seed(0)
    net = _stitched(StitchPoint(2, 1), *models, ls_calib=splits)
    train, val = caches[2]
    adapter_init = _snapshot(net.adapter)
    init_acc = cached_accuracy(net, val)
    assert init_acc > 0.5

    result = tune_adapter(net, train, val, TuneSettings(epochs=epochs, lr=50.0, batch_size=32, patience=1), seed=0)

    assert result.val_accuracy_init == pytest.approx(init_acc, abs=1e-4)
    assert result.val_accuracy >= result.val_accuracy_init
    assert result.best_epoch == 0
    assert result.epochs_run == 1  # patience 1: stops after the first epoch without gain
    assert _same(adapter_init, _snapshot(net.adapter))
    assert cached_accuracy(net, val) == pytest.approx(init_acc, abs=1e-9)


def test_tune_adapter_is_deterministic_for_a_seed(models, caches, splits: Splits) -> None:  # type: ignore[no-untyped-def]
    results, weights = [], []
    for _ in range(2):
        torch.manual_seed(0)
        net = _stitched(StitchPoint(1, 1), *models, ls_calib=splits)
        results.append(tune_adapter(net, *caches[1], TuneSettings(epochs=1, lr=1e-3, batch_size=32), seed=7))
        weights.append(_snapshot(net.adapter))
    assert results[0] == results[1]
    assert _same(weights[0], weights[1])
