"""The preprocessing contract: each donor normalises its own input inside block 0, so every variant takes pixels."""

from __future__ import annotations

import pytest
import torch

from restnet_compile.config.build import load_build_config
from restnet_compile.errors import BadInputError
from restnet_compile.models import create_model
from restnet_compile.models.normalize import Normalize
from restnet_compile.pipeline.load import load_models
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint

LARGE = {"mean": [0.5], "std": [0.25]}
SMALL = {"mean": [0.1307], "std": [0.3081]}


def test_two_donors_with_different_normalisations_stitch_correctly() -> None:
    config = load_build_config(None, large_preprocess=LARGE, small_preprocess=SMALL)
    large, small = load_models(config)
    raw_large, raw_small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    x = torch.rand(8, 1, 28, 28)
    assert isinstance(large.blocks[0][0], Normalize)
    assert large.normalization.mean == (0.5,) and large.normalization.source == "build config"
    # each anchor sees its own training distribution
    assert torch.allclose(large(x), raw_large((x - 0.5) / 0.25), atol=1e-5)
    assert torch.allclose(small(x), raw_small((x - 0.1307) / 0.3081), atol=1e-5)
    # a stitched variant: the prefix donor's normalisation at the input, nothing re-normalised mid-network
    point = StitchPoint(2, 1)
    adapter = ADAPTERS.get("conv1x1")(large.feature_specs()[2], small.feature_specs()[1])
    net = StitchedNet(large, small, point, adapter).eval()
    with torch.no_grad():
        feats = raw_large.run_blocks((x - 0.5) / 0.25, 0, 3)
        assert torch.allclose(net.prefix(x), feats, atol=1e-5)
        expected = raw_small.head(raw_small.run_blocks(adapter(feats), 2, len(raw_small.blocks)))
        assert torch.allclose(net(x), expected, atol=1e-5)
        # the adapter's least-squares target is the back model's block on ITS normalised input
        target = small.run_blocks(x, 0, 2)
        assert torch.allclose(target, raw_small.run_blocks((x - 0.1307) / 0.3081, 0, 2), atol=1e-5)


def test_without_a_contract_the_model_is_left_as_it_is() -> None:
    large, _small = load_models(load_build_config(None))
    assert not isinstance(large.blocks[0], torch.nn.Sequential) or not isinstance(large.blocks[0][0], Normalize)
    assert large.normalization.identity and large.normalization.source.startswith("none")


def test_one_value_serves_every_channel_and_a_wrong_count_is_one_line() -> None:
    with pytest.raises(BadInputError, match=r"large_preprocess: mean has 3 values but model demo-large-cnn takes 1"):
        load_models(load_build_config(None, large_preprocess={"mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]}))


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"mean": [0.1], "std": [0.0]}, "every std must be > 0"),
        ({"mean": [0.1, 0.2], "std": [0.3]}, "mean has 2 values but std has 1"),
        ({"mean": [0.1]}, "give mean and std together"),
        ({"crop": 0}, "large_preprocess.crop"),
    ],
)
def test_bad_contract_is_one_line(given: dict, words: str) -> None:
    with pytest.raises(BadInputError, match=words) as err:
        load_build_config(None, large_preprocess=given)
    assert "\n" not in str(err.value)
