"""``tokens-to-map-cls``: un-patchify per cell, class token broadcast, joint least-squares init, export."""

from __future__ import annotations

import pytest
import torch

from restnet_compile.errors import BadInputError
from restnet_compile.models import FeatureSpec
from restnet_compile.stitching import ADAPTERS
from restnet_compile.stitching.adapters import adapter_for
from restnet_compile.stitching.adapters.unpatchify import TokensToMapClsAdapter, TokensToMapMlpAdapter
from tests.specs import m, randomise, t


def test_registered_and_planned_for_tokens_to_map() -> None:
    assert "tokens-to-map-cls" in ADAPTERS.names()
    assert adapter_for(t(50, 64), m(16, 14)) == "tokens-to-map-mlp"


@pytest.mark.parametrize(("dst", "shape"), [(m(5, 14), (2, 5, 14, 14)), (m(5, 7), (2, 5, 7, 7)), (m(5, 1), None)])
def test_shapes_up_same_down(dst: FeatureSpec, shape: tuple | None) -> None:
    if shape is None:  # 7x7 -> 1x1 is a down-factor of 7
        shape = (2, 5, 1, 1)
    adapter = TokensToMapClsAdapter(t(50, 8), dst)
    assert adapter(torch.randn(2, 50, 8)).shape == shape


def test_each_cell_of_a_patch_has_its_own_map_and_the_class_token_is_broadcast() -> None:
    adapter = TokensToMapClsAdapter(t(17, 6), m(3, 8))  # 4x4 grid -> 8x8 map: 2x2 cells per patch
    randomise(adapter, 0)
    x = torch.randn(2, 17, 6)
    with torch.no_grad():
        y = adapter(x)
        grid = x[:, 1:].reshape(2, 4, 4, 6)
        cls = adapter.cls(x[:, 0])
        for ky in range(2):
            for kx in range(2):
                w = adapter.unpatch.weight[:, :, ky, kx]  # (D, C)
                expected = grid @ w + adapter.unpatch.bias + cls[:, None, None, :]
                assert torch.allclose(y[:, :, ky::2, kx::2].permute(0, 2, 3, 1), expected, atol=1e-5)
        x2 = x.clone()
        x2[:, 0] += 1.0  # the class token moves every cell by the same per-channel offset
        diff = adapter(x2) - y
        assert torch.allclose(diff, diff[:, :, :1, :1].expand_as(diff), atol=1e-5)
        assert diff.abs().max() > 1e-3


@pytest.mark.parametrize(("src", "dst"), [(t(17, 10), m(3, 8)), (t(17, 10), m(3, 4)), (t(16, 10), m(3, 8))])
def test_least_squares_recovers_a_known_adapter(src: FeatureSpec, dst: FeatureSpec) -> None:
    teacher = TokensToMapClsAdapter(src, dst)
    randomise(teacher, 1)
    x = torch.randn(60, src.shape[0], 10)
    with torch.no_grad():
        y = teacher(x)
    student = TokensToMapClsAdapter(src, dst)
    assert student.least_squares_init(x, y, ridge=1e-10) == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        assert torch.allclose(student(x), y, atol=1e-3)
        assert torch.allclose(student.unpatch.weight, teacher.unpatch.weight, atol=1e-3)


def test_least_squares_beats_dropping_the_class_token() -> None:
    # targets driven by the class token only: tokens-to-map cannot see it, this adapter fits it
    x = torch.randn(80, 17, 6)
    y = (x[:, 0, :3])[:, :, None, None].expand(80, 3, 8, 8).contiguous()
    plain = ADAPTERS.get("tokens-to-map")(t(17, 6), m(3, 8))
    rich = TokensToMapClsAdapter(t(17, 6), m(3, 8))
    assert plain.least_squares_init(x, y) < 0.2
    assert rich.least_squares_init(x, y) > 0.999


@pytest.mark.parametrize(
    ("src", "dst", "words"), [(m(8, 7), m(8, 7), "joins tokens -> map"), (t(50, 8), m(8, 10), "7x7")]
)
def test_refusals_name_the_adapter(src: FeatureSpec, dst: FeatureSpec, words: str) -> None:
    assert TokensToMapClsAdapter.incompatibility(src, dst) is not None
    with pytest.raises(BadInputError, match=f"tokens-to-map-cls.*{words}"):
        TokensToMapClsAdapter(src, dst)


@pytest.mark.parametrize("dst", [m(4, 8), m(4, 4)])
def test_mlp_variant_starts_at_least_as_well_as_the_linear_one(dst: FeatureSpec) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(60, 17, 6, generator=gen)
    teacher = TokensToMapClsAdapter(t(17, 6), dst)
    randomise(teacher, 4)
    with torch.no_grad():
        y = torch.tanh(teacher(x))  # a nonlinear target: the linear fit cannot be exact
    linear = TokensToMapClsAdapter(t(17, 6), dst)
    mlp = TokensToMapMlpAdapter(t(17, 6), dst)
    r2_linear, r2_mlp = linear.least_squares_init(x, y), mlp.least_squares_init(x, y)
    assert r2_mlp >= r2_linear - 1e-6 and r2_linear < 0.99
    mlp.eval()
    with torch.no_grad():
        out = mlp(x)
    assert out.shape == y.shape
    resid = float(((out - y) ** 2).sum() / ((y - y.mean((0, 2, 3), keepdim=True)) ** 2).sum())
    assert 1 - resid == pytest.approx(r2_mlp, abs=1e-3)  # the reported R^2 is the module's own output's
