"""Bad model input: each refused with one line (BadInputError, exit 2) that names the problem and the way out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import save_file

from restnet_compile.errors import EXIT_BAD_INPUT, BadInputError
from restnet_compile.models import create_model
from tests.unit.fixture_models import FIXTURES, MNIST, SPECS, raw_model

BAD = f"{FIXTURES}/bad_models.py"


def _refused(pattern: str, **kwargs: object) -> str:
    name = kwargs.pop("name")
    with pytest.raises(BadInputError, match=pattern) as info:
        create_model(name, input_shape=MNIST, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == EXIT_BAD_INPUT
    return text


def test_untraceable_model_names_the_line_and_the_way_out() -> None:
    text = _refused(r"cannot split DataDependent into blocks", name=f"{BAD}:DataDependent", num_classes=10)
    assert "bad_models.py:15 `if x.mean() > 0.5:`" in text  # where tracing stopped
    assert "torch.export" in text and "`split:`" in text


def test_split_naming_no_module_lists_the_valid_cut_points(checkpoints: dict[str, Path]) -> None:
    _refused(
        r"split: no module or graph node 'layer9' to cut after; valid cut points: .*layer1, .*layer2, .*layer3$",
        name=SPECS["residual"],
        weights=checkpoints["residual"],
        split=["layer9"],
    )


def test_split_inside_a_residual_names_what_crosses_the_cut(checkpoints: dict[str, Path]) -> None:
    _refused(
        r"cannot cut after 'layer1\.0\.conv1', inside a residual or branch: 'relu' and 'layer1\.0\.conv1' both cross",
        name=SPECS["residual"],
        weights=checkpoints["residual"],
        split=["layer1.0.conv1"],
    )


def test_split_in_the_head(checkpoints: dict[str, Path]) -> None:
    _refused(
        r"split: 'fc_layers\.0' lies in the head, after 'conv_layers'", name=SPECS["digit_cnn"], split=["fc_layers.0"]
    )


def test_split_after_a_value_that_is_no_feature_map() -> None:
    _refused(
        r"split: after 'reshape' comes shape 2x7x2x7x2x16, not a feature map or token sequence",
        name=f"{FIXTURES}/traced_fallbacks.py:ChannelsLastNet",
        split=["reshape"],
    )


def test_outputs_that_are_not_logits_of_num_classes(checkpoints: dict[str, Path]) -> None:
    _refused(r"output is not logits of 10 classes: got a tensor 2x8x28x28", name=f"{BAD}:FeatureMaps", num_classes=10)
    _refused(r"output is not logits of 7 classes: got a tensor 2x10", name=SPECS["digit_cnn"], num_classes=7)
    _refused(
        r"none of its outputs is logits of 5 classes: got dict \(embedding: 2x32, logits: 2x10\)",
        name=SPECS["dict_output"],
        num_classes=5,
    )


def test_unknown_timm_name_lists_close_matches() -> None:
    _refused(r"timm has no architecture 'resnet10x'; close matches: resnet10t", name="timm:resnet10x")
    _refused(r"timm has no tag 'a9_in1k' for resnet18; close matches: resnet18\.a\d_in1k", name="timm:resnet18.a9_in1k")


def test_safetensors_of_another_architecture_names_a_few_keys(tmp_path: Path) -> None:
    path = tmp_path / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in raw_model("digit_cnn").state_dict().items()}, str(path))
    text = _refused(
        r"checkpoint .*cnn\.safetensors does not fit ResNetMini: lacks key 'conv1\.weight', 'bn1\.weight', "
        r"'bn1\.bias' and \d+ more; has unexpected key 'conv_layers\.0\.bias'",
        name=SPECS["residual"],
        weights=path,
    )
    assert text.count("'") <= 14  # a few keys, not all of them


def test_timm_weights_folder_of_another_architecture(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    folder = tmp_path / "weights"
    shutil.copytree(checkpoints["timm"], folder)
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 10}))
    _refused(
        r"config\.json describes architecture 'resnet18', not 'test_resnet'", name="timm:test_resnet", weights=folder
    )
    (folder / "config.json").unlink()
    (folder / "model.safetensors").unlink()
    _refused(
        r"folder .* holds neither model\.safetensors nor pytorch_model\.bin", name="timm:resnet10t", weights=folder
    )


def test_split_given_for_a_model_that_is_already_split() -> None:
    with pytest.raises(BadInputError, match=r"demo-small-cnn: is already split into blocks"):
        create_model("demo-small-cnn", split=["blocks.0"])
