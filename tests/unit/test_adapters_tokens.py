"""Token adapters (tokens->tokens, map->tokens, tokens->map): shapes, class token, least-squares init, planning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnet_compile.config.build import PlanSettings
from restnet_compile.errors import BadInputError
from restnet_compile.models import FeatureSpec
from restnet_compile.stitching import ADAPTERS, plan_candidates
from restnet_compile.stitching.adapters import adapter_for
from restnet_compile.stitching.adapters.grid import grid_factor, resample
from restnet_compile.stitching.adapters.map_to_tokens import MapToTokensAdapter
from restnet_compile.stitching.adapters.tokens_to_map import TokensToMapMlpAdapter
from restnet_compile.stitching.adapters.tokens_to_tokens import TokenLinearAdapter
from tests.specs import m, randomise, t


def test_registered_names_and_dispatch() -> None:
    assert {"conv1x1", "token-linear", "map-to-tokens", "tokens-to-map-mlp"} <= set(ADAPTERS.names())
    assert adapter_for(m(32, 14), m(16, 7)) == "conv1x1"
    assert adapter_for(t(50, 64), t(50, 32)) == "token-linear"
    assert adapter_for(m(32, 14), t(50, 64)) == "map-to-tokens"
    assert adapter_for(t(50, 64), m(16, 14)) == "tokens-to-map-mlp"


def test_token_grid_reading() -> None:
    assert (t(50, 8).grid, t(50, 8).prefix_tokens) == ((7, 7), 1)
    assert (t(197, 8).grid, t(197, 8).prefix_tokens) == ((14, 14), 1)
    assert (t(49, 8).grid, t(49, 8).prefix_tokens) == ((7, 7), 0)
    assert (t(198, 8).grid, t(198, 8).prefix_tokens) == ((14, 14), 2)
    assert m(8, 7).prefix_tokens == 0


@pytest.mark.parametrize(
    ("src", "dst", "how"),
    [((14, 14), (7, 7), ("down", 2)), ((7, 7), (14, 14), ("up", 2)), ((7, 7), (7, 7), ("same", 1))],
)
def test_grid_factor_and_resample(src: tuple, dst: tuple, how: tuple) -> None:
    assert grid_factor(src, dst) == how
    x = torch.arange(float(src[0] * src[1])).reshape(1, 1, *src)
    y = resample(x, how)
    assert y.shape[-2:] == dst
    assert float(y.mean()) == pytest.approx(float(x.mean()))  # pooling and repetition keep the mean


@pytest.mark.parametrize("pair", [((7, 7), (4, 4)), ((14, 14), (7, 14)), ((6, 6), (4, 4))])
def test_grid_factor_refuses_non_integer_or_anisotropic(pair: tuple) -> None:
    assert grid_factor(*pair) is None


# --- tokens -> tokens ----------------------------------------------------------------------------------------------


def test_token_linear_keeps_the_class_token_apart() -> None:
    adapter = TokenLinearAdapter(t(50, 16), t(50, 8))
    x = torch.randn(3, 50, 16)
    y = adapter(x)
    assert y.shape == (3, 50, 8)
    x2 = x.clone()
    x2[:, 1:] = torch.randn(3, 49, 16)  # change every patch token
    assert torch.allclose(adapter(x2)[:, 0], y[:, 0])  # the class token depends on the class token only
    assert torch.allclose(y, adapter.linear(x))  # same grid: per-token linear, nothing else


def test_token_linear_resamples_the_grid() -> None:
    adapter = TokenLinearAdapter(t(65, 16), t(17, 8))  # 1 + 8x8 -> 1 + 4x4
    x = torch.randn(2, 65, 16)
    y = adapter(x)
    assert y.shape == (2, 17, 8)
    grid = x[:, 1:].reshape(2, 8, 8, 16)
    pooled = grid.reshape(2, 4, 2, 4, 2, 16).mean(dim=(2, 4)).reshape(2, 16, 16)
    assert torch.allclose(y[:, 1:], adapter.linear(pooled), atol=1e-6)
    assert torch.allclose(y[:, 0], adapter.linear(x[:, 0]), atol=1e-6)


def test_token_linear_least_squares_recovers_a_known_adapter() -> None:
    teacher = TokenLinearAdapter(t(17, 12), t(17, 6))
    randomise(teacher, 0)
    x = torch.randn(40, 17, 12)
    with torch.no_grad():
        y = teacher(x)
    student = TokenLinearAdapter(t(17, 12), t(17, 6))
    assert student.least_squares_init(x, y, ridge=1e-10) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(student.linear.weight, teacher.linear.weight, atol=1e-4)
    assert torch.allclose(student.linear.bias, teacher.linear.bias, atol=1e-4)


# --- map -> tokens -------------------------------------------------------------------------------------------------


def test_map_to_tokens_shapes_and_class_token() -> None:
    adapter = MapToTokensAdapter(m(32, 14), t(50, 64))
    x = torch.randn(2, 32, 14, 14)
    y = adapter(x)
    assert y.shape == (2, 50, 64)
    # patch tokens are the 1x1 conv of the 2x2-pooled map plus a per-position embedding, in row-major order
    pooled = torch.nn.functional.avg_pool2d(x, 2)
    expected = adapter.conv(pooled).flatten(2).transpose(1, 2) + adapter.pos_embed
    assert torch.allclose(y[:, 1:], expected, atol=1e-6)
    assert torch.allclose(y[:, 0], adapter.cls(x.mean(dim=(2, 3))), atol=1e-6)


def test_map_to_tokens_without_class_token() -> None:
    adapter = MapToTokensAdapter(m(8, 7), t(49, 4))
    assert adapter.cls is None
    assert adapter(torch.randn(2, 8, 7, 7)).shape == (2, 49, 4)


def test_map_to_tokens_least_squares_recovers_conv_position_embedding_and_class_token() -> None:
    teacher = MapToTokensAdapter(m(6, 8), t(17, 5))
    randomise(teacher, 1)
    x = torch.randn(120, 6, 8, 8)
    with torch.no_grad():
        y = teacher(x)
    student = MapToTokensAdapter(m(6, 8), t(17, 5))
    r2 = student.least_squares_init(x, y, ridge=1e-10)
    assert r2 == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        assert torch.allclose(student(x), y, atol=1e-3)
        assert torch.allclose(student.conv.weight, teacher.conv.weight, atol=1e-3)


def test_map_to_tokens_position_embedding_is_fitted_in_closed_form() -> None:
    # targets that depend on position only: the conv learns nothing, the position embedding everything
    rng = np.random.default_rng(0)
    pos = torch.from_numpy(rng.normal(size=(1, 16, 3)).astype(np.float32))
    x = torch.randn(64, 4, 4, 4)
    y = torch.cat([torch.zeros(64, 1, 3), pos.expand(64, -1, -1)], dim=1)
    adapter = MapToTokensAdapter(m(4, 4), t(17, 3))
    assert adapter.least_squares_init(x, y, ridge=1e-6) > 0.999
    with torch.no_grad():
        assert torch.allclose(adapter.pos_embed + adapter.conv.bias, pos, atol=0.05)


# --- refusals and planning -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "src", "dst", "words"),
    [
        (TokenLinearAdapter, m(8, 7), t(50, 8), "joins tokens -> tokens"),
        (TokenLinearAdapter, t(50, 8), t(17, 8), "cannot resample grid 7x7"),
        (MapToTokensAdapter, m(8, 10), t(50, 8), "cannot resample grid 10x10"),
        (MapToTokensAdapter, t(50, 8), t(50, 8), "joins map -> tokens"),
        (TokensToMapMlpAdapter, t(50, 8), m(8, 10), "cannot resample grid 7x7"),
        (TokensToMapMlpAdapter, m(8, 7), m(8, 7), "joins tokens -> map"),
    ],
)
def test_incompatible_shapes_are_refused(cls: type, src: FeatureSpec, dst: FeatureSpec, words: str) -> None:
    assert cls.incompatibility(src, dst) is not None
    with pytest.raises(BadInputError, match=words):
        cls(src, dst)


def test_no_adapter_for_shapes_nothing_can_join() -> None:
    assert adapter_for(t(50, 8), m(8, 10)) is None
    assert adapter_for(m(8, 10), t(50, 8)) is None


# The demo shapes: large CNN 28-14-14-7-7-7, ViT 4 x (1 + 7x7 tokens), small CNN 14-14-7-7
LARGE = [m(32, 28), m(32, 14), m(64, 14), m(64, 7), m(128, 7), m(128, 7)]
VIT = [t(50, 64)] * 4
SMALL = [m(8, 14), m(16, 14), m(32, 7), m(32, 7)]


def test_plan_cnn_to_transformer_uses_map_to_tokens() -> None:
    cands = plan_candidates(np.random.default_rng(0).uniform(size=(6, 4)), LARGE, VIT, PlanSettings())
    assert len(cands) == 5
    assert {c.adapter for c in cands} == {"map-to-tokens"}


def test_plan_transformer_to_cnn_uses_tokens_to_map_mlp() -> None:
    cands = plan_candidates(np.random.default_rng(0).uniform(size=(4, 4)), VIT, SMALL, PlanSettings())
    assert cands
    assert {c.adapter for c in cands} == {"tokens-to-map-mlp"}


def test_plan_small_to_large_order_names_variants() -> None:
    cka = np.random.default_rng(1).uniform(size=(6, 4))
    cands = plan_candidates(cka.T, SMALL, LARGE, PlanSettings(order="small-large"))
    assert cands
    assert all(c.point.variant_id.startswith("S") and "-L" in c.point.variant_id for c in cands)
    for c in cands:
        assert c.cka == pytest.approx(cka[c.point.back_block, c.point.front_block])
