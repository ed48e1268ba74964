"""Every torchvision classification family (its smallest variant) and a few timm models round-trip through a
``.safetensors`` file as users write them (``safetensors.torch.save_file``, no header metadata) and compute what
they computed before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from restnet_compile.models.checkpoints import load_checkpoint
from restnet_compile.models.sources import ModelOptions, torchvision_factory
from restnet_compile.models.tv import classification_names
from tests.unit.test_checkpoint_metadata import scramble

pytestmark = pytest.mark.extended  # many architectures: `make test-extended`, outside CI

#: family prefix -> its smallest architecture (by parameters) and the input size it is run at
FAMILIES = {
    "alexnet": ("alexnet", 64),
    "convnext": ("convnext_tiny", 32),
    "densenet": ("densenet121", 32),
    "efficientnet_b": ("efficientnet_b0", 32),
    "efficientnet_v2": ("efficientnet_v2_s", 32),
    "googlenet": ("googlenet", 32),
    "inception": ("inception_v3", 80),
    "maxvit": ("maxvit_t", 224),
    "mnasnet": ("mnasnet0_5", 32),
    "mobilenet_v2": ("mobilenet_v2", 32),
    "mobilenet_v3": ("mobilenet_v3_small", 32),
    "regnet_x": ("regnet_x_400mf", 32),
    "regnet_y": ("regnet_y_400mf", 32),
    "resnet": ("resnet18", 32),
    "resnext": ("resnext50_32x4d", 32),
    "shufflenet": ("shufflenet_v2_x0_5", 32),
    "squeezenet": ("squeezenet1_1", 32),
    "swin_": ("swin_t", 32),
    "swin_v2": ("swin_v2_t", 32),
    "vgg": ("vgg11_bn", 32),
    "vit": ("vit_b_32", 32),
    "wide_resnet": ("wide_resnet50_2", 32),
}


def family(name: str) -> str:
    """The longest family prefix of ``name`` (``swin_v2_t`` is ``swin_v2``, not ``swin_``)."""
    return max((f for f in FAMILIES if name.startswith(f)), key=len, default="")


def test_every_torchvision_classification_model_has_a_family_here() -> None:
    names = classification_names()
    assert len(names) >= 80
    assert not [n for n in names if not family(n)]
    assert {family(FAMILIES[f][0]) for f in FAMILIES} == set(FAMILIES)  # each representative is of its family


@pytest.mark.parametrize(("arch", "size"), list(FAMILIES.values()), ids=list(FAMILIES))
def test_safetensors_round_trip(arch: str, size: int, tmp_path: Path) -> None:
    shape = (3, size, size)
    build = torchvision_factory(arch)
    donor = scramble(build(arch, ModelOptions(input_shape=shape, num_classes=10)), 1)
    path = tmp_path / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    model = scramble(build(arch, ModelOptions(input_shape=shape, num_classes=10)), 2)
    x = torch.rand(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, before = donor(x), model(x)
        load_checkpoint(model, path, arch)  # what the source does with ``weights``
        got = model(x)
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * scale), arch
    assert not torch.allclose(before, expected, rtol=0.01, atol=0.01 * scale), arch  # the file made the match


#: timm architectures as users have them: a folder in timm / hub layout (``model.safetensors`` + ``config.json``)
TIMM = ["mobilevit_xxs", "repvit_m0_9", "efficientvit_m0", "levit_128s"]


@pytest.mark.parametrize("arch", TIMM)
def test_timm_folder_round_trip(arch: str, tmp_path: Path) -> None:
    from restnet_compile.models.timm_source import create_timm

    shape = (3, 64, 64)
    donor = scramble(create_timm(f"timm:{arch}", None, shape, 10)[0], 1)
    folder = tmp_path / arch
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": arch, "num_classes": 10}))
    loaded = create_timm(f"timm:{arch}", folder, shape, None)[0].eval()
    x = torch.rand(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = donor(x), loaded(x)
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * scale), arch
