"""Models as their owners have them, built end to end: auto-split, stitched, exported to int8, parity-checked.

The fixture models (tests/fixtures/user_models and a timm architecture) were trained on digits normalised with mean
0.1307 / std 0.3081 by ``scripts/train_fixture_models.py``; their checkpoints are shipped in
``tests/fixtures/user_models/trained`` as .pth / .safetensors / a timm folder, and loaded untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.models.registry import create_model
from tests.unit.fixture_models import DIGIT_STATS, MNIST, SPECS, trained_path

MEAN, STD = DIGIT_STATS["mean"][0], DIGIT_STATS["std"][0]
FAST = {"dataset": "mnist5k", "plan": {"max_candidates": 1}, "tune": {"epochs": 1}, "selection": "feasible"}
CONTRACT = {"large_preprocess": DIGIT_STATS, "small_preprocess": DIGIT_STATS}
#: Every fixture model in one pair: a prefix donor and a suffix donor. timm's test_resnet halves its resolution
#: in its stem, so it is the suffix donor: a prefix must not need upsampling to feed it.
PAIRS = [("sequential", "digit_cnn"), ("dict_output", "residual"), ("tuple_output", "timm")]
#: The default run builds the first pair; the others (a minute each) run in the slow tier.
PARAMS = [pytest.param(p, id="-".join(p), marks=[pytest.mark.slow] if k else []) for k, p in enumerate(PAIRS)]


def _config(large: str, small: str, **extra: object) -> BuildConfig:
    return BuildConfig.model_validate(
        {
            "large": SPECS[large],
            "small": SPECS[small],
            "large_weights": str(trained_path(large)),
            "small_weights": str(trained_path(small)),
            "input_shape": list(MNIST),
            "num_classes": 10,
            **FAST,
            **extra,
        }
    )


class Builds(dict):
    """The int8 bundle of each pair with the models' contract, built once when a test first asks for it."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, pair: tuple[str, str]) -> api.BuildResult:
        out = self.root / "-".join(pair)
        self[pair] = api.build(_config(*pair, **CONTRACT, target="tflite-int8"), out, cache=False)
        return self[pair]


@pytest.fixture(scope="module")
def int8_builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return Builds(tmp_path_factory.mktemp("int8"))


@pytest.mark.parametrize("pair", PARAMS)
def test_every_fixture_model_is_split_stitched_and_built_to_int8(pair: tuple[str, str], int8_builds: Builds) -> None:
    """The build traces and splits each model (exactly, or it refuses), stitches the pair and ships int8 variants
    that pass the target's parity rule (the build itself fails with exit code 4 otherwise)."""
    for key in pair:  # the split the build used: several traced blocks
        model = create_model(SPECS[key], weights=trained_path(key), input_shape=MNIST, num_classes=10)
        assert len(model.blocks) >= 2, key
    result = int8_builds[pair]
    m = result.manifest
    assert m.target.name == "tflite-int8" and (result.bundle_dir / "variants.tflite").is_file()
    shipped = m.shipped()
    assert "stitched" in {v.kind for v in shipped}, [v.id for v in m.variants]
    for v in shipped:
        assert v.parity is not None and v.accuracy_deployed is not None
        assert v.parity.top1_agreement >= 0.98 and v.accuracy_fp32 - v.accuracy_deployed <= 0.01, v
    for role in ("large", "small"):
        anchor = m.variant(role)
        assert anchor.accuracy_fp32 > 0.9, (role, anchor.accuracy_fp32)  # the contract: trained accuracy kept
    checks = api.verify(result.bundle_dir)
    assert checks and all(c.ok for c in checks), checks


def test_normalised_models_keep_their_accuracy_only_with_their_contract(tmp_path: Path, int8_builds: Builds) -> None:
    """Both donors were trained on normalised digits: with their contract the bundle keeps their accuracy in fp32
    (PyTorch) and int8 (deployed); without it every model loses accuracy, the nn.Sequential one most."""
    good = int8_builds[("sequential", "digit_cnn")].manifest
    bad = api.build(
        _config("sequential", "digit_cnn", target="tflite-fp32"), tmp_path / "without", cache=False
    ).manifest
    losses = []
    for role in ("large", "small"):
        with_it, without = good.variant(role), bad.variant(role)
        assert with_it.accuracy_fp32 > 0.9, (role, with_it.accuracy_fp32)
        assert with_it.accuracy_deployed is not None and with_it.accuracy_deployed >= with_it.accuracy_fp32 - 0.01
        assert without.accuracy_fp32 < with_it.accuracy_fp32, (role, without.accuracy_fp32)
        losses.append(with_it.accuracy_fp32 - without.accuracy_fp32)
    assert max(losses) > 0.2, losses
    assert good.models.large.preprocess is not None and good.models.large.preprocess.mean == (MEAN,)
    assert bad.models.large.preprocess is not None and bad.models.large.preprocess.source.startswith("none")
