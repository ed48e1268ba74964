"""torchvision as users write it: any classification model by name, and one line with close matches for a name
torchvision lacks (``import torchvision`` in user code: tests/integration/test_torchvision_user_code.py)."""

from __future__ import annotations

import pytest
import torch

from restnet_compile.errors import BadInputError
from restnet_compile.models.registry import MODELS, create_model

SHAPE = (3, 32, 32)


@pytest.mark.parametrize("spec", ["torchvision:shufflenet_v2_x0_5", "shufflenet_v2_x0_5"])
def test_an_unregistered_torchvision_model_by_name(spec: str) -> None:
    assert "shufflenet_v2_x0_5" not in MODELS  # not one of the registered names
    torch.manual_seed(0)
    model = create_model(spec, input_shape=SHAPE, num_classes=10)
    assert model.model_name == spec
    assert len(model.blocks) >= 3
    with torch.no_grad():
        assert model(torch.rand(2, *SHAPE)).shape == (2, 10)


def test_torchvision_prefix_and_bare_name_build_the_same_model() -> None:
    torch.manual_seed(0)
    a = create_model("torchvision:squeezenet1_1", input_shape=SHAPE, num_classes=10)
    torch.manual_seed(0)
    b = create_model("squeezenet1_1", input_shape=SHAPE, num_classes=10)
    assert a.block_names == b.block_names
    x = torch.rand(1, *SHAPE)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        ("torchvision:resnet19", r"model torchvision:resnet19: torchvision has no classification model 'resnet19'; "
         r"close matches: resnet18"),
        ("torchvision.models:mobilenetv2", r"no classification model 'mobilenetv2'; close matches: mobilenet_v2"),
        ("shufflenet_v2_x0_6", r"unknown model 'shufflenet_v2_x0_6'; valid choices: .*torchvision:NAME.*; "
         r"close matches: shufflenet_v2_x0_5"),
    ],
)  # fmt: skip
def test_unknown_torchvision_names_are_one_line_with_close_matches(spec: str, line: str) -> None:
    with pytest.raises(BadInputError, match=line) as err:
        create_model(spec, input_shape=SHAPE)
    assert "\n" not in str(err.value)


def test_the_early_name_check_knows_every_torchvision_classifier() -> None:
    """The list checked before torchvision is imported is the installed torchvision's own."""
    from restnet_compile.config.names import TORCHVISION_CLASSIFIERS, check_model_name
    from restnet_compile.models.tv import classification_names

    assert list(TORCHVISION_CLASSIFIERS) == classification_names()
    check_model_name("shufflenet_v2_x0_5")
    with pytest.raises(BadInputError, match=r"unknown model 'shufflenet_v2_x0_6'; .*close matches: shufflenet_v2_x0_5"):
        check_model_name("shufflenet_v2_x0_6")
