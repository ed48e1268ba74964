"""``tokens-to-map-mlp``: un-patchify per cell, class token broadcast, joint least-squares init, MLP refit."""

from __future__ import annotations

import pytest
import torch

from restnet_compile.errors import BadInputError
from restnet_compile.models import FeatureSpec
from restnet_compile.stitching import ADAPTERS
from restnet_compile.stitching.adapters import adapter_for
from restnet_compile.stitching.adapters.grid import tokens_to_grid
from restnet_compile.stitching.adapters.tokens_to_map import TokensToMapMlpAdapter, fit_unpatchify
from tests.specs import m, randomise, t


def test_registered_and_planned_for_tokens_to_map() -> None:
    assert "tokens-to-map-mlp" in ADAPTERS.names()
    assert adapter_for(t(50, 64), m(16, 14)) == "tokens-to-map-mlp"


@pytest.mark.parametrize(("dst", "shape"), [(m(5, 14), (2, 5, 14, 14)), (m(5, 7), (2, 5, 7, 7)), (m(5, 1), None)])
def test_shapes_up_same_down(dst: FeatureSpec, shape: tuple | None) -> None:
    if shape is None:  # 7x7 -> 1x1 is a down-factor of 7
        shape = (2, 5, 1, 1)
    adapter = TokensToMapMlpAdapter(t(50, 8), dst).eval()
    assert adapter(torch.randn(2, 50, 8)).shape == shape


def test_each_cell_of_a_patch_has_its_own_map_and_the_class_token_is_broadcast() -> None:
    adapter = TokensToMapMlpAdapter(t(17, 6), m(3, 8))  # 4x4 grid -> 8x8 map: 2x2 cells per patch
    randomise(adapter, 0)
    x = torch.randn(2, 17, 6)
    with torch.no_grad():
        y = adapter.hidden(x)
        grid = x[:, 1:].reshape(2, 4, 4, 6)
        cls = adapter.cls(x[:, 0])
        for ky in range(2):
            for kx in range(2):
                w = adapter.unpatch.weight[:, :, ky, kx]  # (D, 2C)
                expected = grid @ w + adapter.unpatch.bias + cls[:, None, None, :]
                assert torch.allclose(y[:, :, ky::2, kx::2].permute(0, 2, 3, 1), expected, atol=1e-5)
        x2 = x.clone()
        x2[:, 0] += 1.0  # the class token moves every cell by the same per-channel offset
        diff = adapter.hidden(x2) - y
        assert torch.allclose(diff, diff[:, :, :1, :1].expand_as(diff), atol=1e-5)
        assert diff.abs().max() > 1e-3


def _linear_fit(x: torch.Tensor, y: torch.Tensor, src: FeatureSpec, ridge: float) -> tuple:
    """``fit_unpatchify`` of ``y`` from tokens ``x`` of spec ``src`` (a target grid no coarser than the patches)."""
    p, s = src.prefix_tokens, y.shape[-1] // src.grid[1]
    return fit_unpatchify(tokens_to_grid(x, p, src.grid), x[:, :p].flatten(1) if p else None, y, s, ridge)


@pytest.mark.parametrize(("src", "dst"), [(t(17, 10), m(3, 8)), (t(17, 10), m(3, 4)), (t(16, 10), m(3, 8))])
def test_least_squares_recovers_a_known_unpatchify(src: FeatureSpec, dst: FeatureSpec) -> None:
    teacher = TokensToMapMlpAdapter(src, dst)  # its un-patchify stage is the known linear map (2 * 3 channels)
    randomise(teacher, 1)
    x = torch.randn(60, src.shape[0], 10)
    with torch.no_grad():
        y = teacher.hidden(x)
    per_cell, bias, cls, r2 = _linear_fit(x, y, src, 1e-10)
    assert r2 == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(torch.from_numpy(per_cell).float(), teacher.unpatch.weight, atol=1e-3)
    assert torch.allclose(torch.from_numpy(bias).float(), teacher.unpatch.bias, atol=1e-3)
    if teacher.cls is not None:
        assert torch.allclose(torch.from_numpy(cls).float(), teacher.cls.weight, atol=1e-3)


def test_least_squares_fits_what_only_the_class_token_carries() -> None:
    x = torch.randn(80, 17, 6)
    y = (x[:, 0, :3])[:, :, None, None].expand(80, 3, 8, 8).contiguous()
    assert TokensToMapMlpAdapter(t(17, 6), m(3, 8)).least_squares_init(x, y) > 0.999


@pytest.mark.parametrize(
    ("src", "dst", "words"), [(m(8, 7), m(8, 7), "joins tokens -> map"), (t(50, 8), m(8, 10), "7x7")]
)
def test_refusals_name_the_adapter(src: FeatureSpec, dst: FeatureSpec, words: str) -> None:
    assert TokensToMapMlpAdapter.incompatibility(src, dst) is not None
    with pytest.raises(BadInputError, match=f"tokens-to-map-mlp.*{words}"):
        TokensToMapMlpAdapter(src, dst)


@pytest.mark.parametrize("dst", [m(4, 8), m(4, 4)])
def test_mlp_starts_at_least_as_well_as_the_linear_unpatchify(dst: FeatureSpec) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(60, 17, 6, generator=gen)
    teacher = TokensToMapMlpAdapter(t(17, 6), FeatureSpec("map", (2, *dst.shape[1:])))  # hidden: 4 channels
    randomise(teacher, 4)
    with torch.no_grad():
        y = torch.tanh(teacher.hidden(x))  # a nonlinear target: the linear fit cannot be exact
    r2_linear = _linear_fit(x, y, t(17, 6), 1e-4)[3]
    mlp = TokensToMapMlpAdapter(t(17, 6), dst)
    r2_mlp = mlp.least_squares_init(x, y)
    assert r2_mlp >= r2_linear - 1e-6 and r2_linear < 0.99
    mlp.eval()
    with torch.no_grad():
        out = mlp(x)
    assert out.shape == y.shape
    resid = float(((out - y) ** 2).sum() / ((y - y.mean((0, 2, 3), keepdim=True)) ** 2).sum())
    assert 1 - resid == pytest.approx(r2_mlp, abs=1e-3)  # the reported R^2 is the module's own output's
