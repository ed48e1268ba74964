"""Richer adapters (shape, LS init), tuning recipes and the config names that select them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from restnet_compile.config.build import TuneSettings, load_build_config
from restnet_compile.errors import BadInputError
from restnet_compile.models.blocks import FeatureSpec
from restnet_compile.pipeline.choices import check_choices
from restnet_compile.stitching import ADAPTERS
from restnet_compile.stitching.adapters import adapter_for, choose_adapter
from restnet_compile.stitching.tuning.loop import CachedSplit
from restnet_compile.stitching.tuning.recipes import RECIPES, RecipeData
from tests.unit.conftest import CliCall

RICH = ["conv-bn-relu"]
SRC, DST = FeatureSpec("map", (12, 8, 8)), FeatureSpec("map", (6, 4, 4))


def _data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(n, 12, 8, 8)
    with torch.no_grad():
        y = torch.relu(nn.functional.avg_pool2d(nn.Conv2d(12, 6, 1)(x), 2)) + 0.1 * torch.randn(n, 6, 4, 4)
    return x, y


def _r2(out: torch.Tensor, y: torch.Tensor) -> float:
    yc = y - y.mean((0, 2, 3), keepdim=True)
    return 1 - float(((out - y) ** 2).sum() / (yc**2).sum())


@pytest.mark.parametrize("name", RICH)
def test_rich_adapter_shape_and_resize(name: str) -> None:
    adapter = ADAPTERS.get(name)(SRC, DST)
    assert adapter(torch.randn(2, 12, 8, 8)).shape == (2, 6, 4, 4)


@pytest.mark.parametrize("name", RICH)
def test_rich_adapter_refuses_what_conv1x1_refuses(name: str) -> None:
    with pytest.raises(BadInputError, match=f"adapter {name}"):
        ADAPTERS.get(name)(FeatureSpec("map", (12, 7, 7)), FeatureSpec("map", (6, 14, 14)))


@pytest.mark.parametrize("name", RICH)
def test_rich_adapter_ls_init_reports_its_own_fit_and_is_near_the_linear_one(name: str) -> None:
    x, y = _data()
    linear = ADAPTERS.get("conv1x1")(SRC, DST).eval()
    r2_lin = linear.least_squares_init(x, y)
    adapter = ADAPTERS.get(name)(SRC, DST).eval()
    r2 = adapter.least_squares_init(x, y)
    with torch.no_grad():
        assert _r2(adapter(x), y) == pytest.approx(r2, abs=1e-4)  # the reported R^2 is what the module computes
    assert r2 >= r2_lin - 1e-6  # the linear map stays in reach of the refit


def test_planner_proposes_plain_adapters_and_config_replaces_map_ones() -> None:
    assert adapter_for(SRC, DST) == "conv1x1"
    assert choose_adapter("conv-bn-relu", "conv1x1", SRC, DST) == "conv-bn-relu"
    assert choose_adapter("auto", "conv1x1", SRC, DST) == "conv1x1"
    tokens = FeatureSpec("tokens", (50, 16))
    assert choose_adapter("conv-bn-relu", "map-to-tokens", SRC, tokens) == "map-to-tokens"  # cannot join: planned
    with pytest.raises(BadInputError, match="valid choices"):
        choose_adapter("nope", "conv1x1", SRC, DST)


@pytest.mark.parametrize(("field", "listed"), [("adapter", "conv-bn-relu"), ("recipe", "ls+feature-match+distill")])
def test_unknown_adapter_or_recipe_lists_valid_names(field: str, listed: str) -> None:
    with pytest.raises(
        BadInputError, match=rf"tune.{field}.*unknown {field} 'bogus'; valid choices: .*{re.escape(listed)}"
    ):
        check_choices(load_build_config(None, tune={field: "bogus"}))


def test_cli_unknown_recipe_exits_2_and_lists_recipes(tmp_path: Path, cli_in_process: CliCall) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text("tune:\n  recipe: bogus\n")
    proc = cli_in_process("build", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "valid choices: distill, ls+feature-match+distill, ls-only" in proc.stderr
    assert not (tmp_path / "o").exists()


class _Net(nn.Module):
    """Stand-in stitched net: adapter + frozen linear head on pooled features."""

    def __init__(self, adapter: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.suffix = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).requires_grad_(False)
        self.head = nn.Identity()

    def from_prefix(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.suffix(self.adapter(feats)))


@pytest.mark.parametrize("recipe", ["ls-only", "distill", "ls+feature-match+distill"])
def test_recipes_keep_donors_frozen_and_never_lose_to_the_ls_start(recipe: str) -> None:
    x, y = _data(96)
    adapter = ADAPTERS.get("conv-bn-relu")(SRC, DST).eval()
    adapter.least_squares_init(x, y)
    net = _Net(adapter)
    labels = net.suffix(y).argmax(1)
    split = CachedSplit(x, torch.randn(96, 3), labels)
    before = [p.clone() for p in net.suffix.parameters()]
    cfg = TuneSettings(epochs=2, recipe=recipe, match_epochs=1, batch_size=32)
    r = RECIPES.get(recipe)
    res = r.run(net, RecipeData(split, split, y if r.needs_targets else None), cfg, 0)  # type: ignore[arg-type]
    assert res.val_accuracy >= res.val_accuracy_init
    assert all(torch.equal(a, b) for a, b in zip(before, net.suffix.parameters(), strict=True))
    assert res.epochs_run == (0 if recipe == "ls-only" else res.epochs_run)
