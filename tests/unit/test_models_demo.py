"""The demo zoo's shipped weights: they load, reproduce their recorded accuracy, and make honest pairs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from restnet_compile.data.dataset import load_dataset, make_splits
from restnet_compile.models.registry import create_model, shipped_weights
from restnet_compile.pipeline.costs import accuracy


def _training_recipes() -> dict[str, object]:
    """The recipes of the training script (scripts/, outside the package)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "pretrain_demo_zoo.py"
    spec = importlib.util.spec_from_file_location("pretrain_demo_zoo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.TRAINING_RECIPES)


TRAINING_RECIPES = _training_recipes()


def _record(name: str) -> dict:
    return json.loads(Path(shipped_weights(name)).with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def test_split():  # type: ignore[no-untyped-def]
    return make_splits(load_dataset("mnist5k"), seed=0).test


@pytest.mark.parametrize("name", list(TRAINING_RECIPES))
def test_shipped_weights_reproduce_the_recorded_test_accuracy(name: str, test_split) -> None:  # type: ignore[no-untyped-def]
    record = _record(name)
    assert record["model"] == name and record["epochs"] == 30  # one training budget for every model
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == record["params"]
    assert accuracy(model, test_split.images, test_split.labels) == pytest.approx(record["test_accuracy"], abs=1e-3)


def test_pairs_differ_by_capacity_and_the_hybrid_vit_is_a_real_large_model() -> None:
    acc = {name: _record(name)["test_accuracy"] for name in TRAINING_RECIPES}
    assert acc["demo-large-cnn"] > acc["demo-small-cnn"]
    # transformer -> CNN stitching needs a transformer stronger than the small CNN; the plain ViT is not
    assert acc["demo-hybrid-vit"] > acc["demo-small-cnn"] > acc["demo-vit"]
