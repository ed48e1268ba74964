"""Model sources: torchvision architectures, a user's own model, registered split functions, bad checkpoints."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from restnet_compile.errors import BadInputError
from restnet_compile.models import MODELS, BlockSequence, create_model
from restnet_compile.models.sources import ModelOptions, torchvision_factory
from restnet_compile.models.splitters import SPLITTERS, register_splitter, split_model

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("arch", "kinds"),
    [
        ("resnet18", {"map"}),
        ("resnet50", {"map"}),
        ("mobilenet_v2", {"map"}),
        ("mobilenet_v3_small", {"map"}),
        ("efficientnet_b0", {"map"}),
        ("vit_b_16", {"tokens"}),
        ("swin_t", {"map"}),
    ],
)
def test_torchvision_split_computes_the_original_model(arch: str, kinds: set[str]) -> None:
    torch.manual_seed(0)
    original = torchvision_factory(arch)(arch, ModelOptions(input_shape=SHAPE, num_classes=10)).eval()
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        expected = original(x)
    seq = split_model(original, arch, SHAPE).eval()
    assert isinstance(seq, BlockSequence)
    assert len(seq.blocks) >= 4
    assert {s.kind for s in seq.feature_specs()} == kinds
    assert len(seq.block_names) == len(seq.blocks)
    with torch.no_grad():
        assert torch.allclose(seq(x), expected, atol=1e-5)
        # every cut reproduces the model: running the blocks one by one then the head is the same function
        outs = seq.block_outputs(x)
        assert torch.allclose(seq.head(outs[-1]), expected, atol=1e-5)


def test_torchvision_names_are_registered() -> None:
    for arch in ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "swin_t"):
        assert arch in MODELS


def test_resnet18_blocks_and_resolutions() -> None:
    model = create_model("resnet18", input_shape=SHAPE, num_classes=10)
    assert model.block_names[:3] == ["stem", "layer1.0", "layer1.1"]
    assert [s.describe() for s in model.feature_specs()][::4] == ["map 64x16x16", "map 128x8x8", "map 512x2x2"]
    assert model.num_classes() == 10
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_vit_tokens_have_a_class_token() -> None:
    model = create_model("vit_b_16", input_shape=(3, 32, 32), num_classes=10)
    spec = model.feature_specs()[0]
    assert spec.describe() == "tokens 5x768"
    assert spec.grid == (2, 2)
    assert spec.prefix_tokens == 1


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(3)
    donor = torchvision_factory("resnet18")("resnet18", ModelOptions(input_shape=SHAPE, num_classes=10)).eval()
    path = tmp_path / "r18.pt"
    torch.save(donor.state_dict(), path)
    model = create_model("resnet18", weights=path, input_shape=SHAPE, num_classes=10)
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(model(x), donor(x), atol=1e-5)
    fresh = create_model("resnet18", input_shape=SHAPE, num_classes=10)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), donor(x), atol=1e-3)  # the file, not the random init, made the match


def _r18_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint in torchvision's own key layout (``conv1.weight``, ``fc.bias``...), as users have them."""
    path = tmp_path / "r18.pt"
    torch.save(torchvision_factory("resnet18")("resnet18", ModelOptions(None, SHAPE, 10)).state_dict(), path)
    return path


def test_checkpoint_for_another_architecture_names_the_first_key(tmp_path: Path) -> None:
    path = _r18_checkpoint(tmp_path)
    with pytest.raises(BadInputError, match=r"model mobilenet_v2: checkpoint .* lacks key 'features\.0\.0\.weight'"):
        create_model("mobilenet_v2", weights=path, input_shape=SHAPE, num_classes=10)


def test_checkpoint_with_other_head_width_names_the_key_and_shapes(tmp_path: Path) -> None:
    path = _r18_checkpoint(tmp_path)
    with pytest.raises(BadInputError, match=r"key 'fc\.weight' has shape \(10, 512\), the model expects \(7, 512\)"):
        create_model("resnet18", weights=path, input_shape=SHAPE, num_classes=7)


def test_pickle_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(BadInputError, match="not a state_dict"):
        create_model("demo-small-cnn", weights=path)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises(BadInputError, match="cannot be loaded safely"):
        create_model("demo-small-cnn", weights=path)


USER_MODEL = """
import torch
from torch import nn

class Net(nn.Module):
    input_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, stride=2, padding=1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 5))

    def forward(self, x):
        return self.head(self.blocks(x))

class NoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

def factory():
    return Net()
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(USER_MODEL)
    return path


def test_user_model_from_file_with_checkpoint(user_file: Path, tmp_path: Path) -> None:
    model = create_model(f"{user_file}:Net")
    assert model.model_name == f"{user_file}:Net"
    assert [s.describe() for s in model.feature_specs()] == ["map 4x12x12", "map 8x6x6"]
    torch.manual_seed(5)
    other = create_model(f"{user_file}:Net")
    ckpt = tmp_path / "net.pt"
    torch.save(other.state_dict(), ckpt)
    loaded = create_model(f"{user_file}:Net", weights=ckpt)
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(loaded(x), other(x))


def test_user_model_from_module_factory(user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(user_file.parent))
    model = create_model("my_models:factory")
    assert len(model.blocks) == 2
    assert model.num_classes() == 5


def test_user_model_that_cannot_be_split(user_file: Path) -> None:
    with pytest.raises(BadInputError, match=r"cannot split NoBlocks into blocks; registered split functions: .*resnet"):
        create_model(f"{user_file}:NoBlocks", input_shape=(1, 12, 12))


def test_user_model_with_an_input_it_cannot_take_names_the_layer(user_file: Path) -> None:
    with pytest.raises(BadInputError, match=r"Net: head fails on map 8x8x8"):
        create_model(f"{user_file}:Net", input_shape=(1, 16, 16))
    with pytest.raises(
        BadInputError,
        match=r"model .*:Net: block 0 \(blocks\.0\): takes grey \(1-channel\) images but the build.s input is 3x12x12",
    ):
        create_model(f"{user_file}:Net", input_shape=(3, 12, 12))


def test_vit_at_a_resolution_it_cannot_take() -> None:
    with pytest.raises(BadInputError, match=r"model vit_b_16: .*square"):
        create_model("vit_b_16", input_shape=(3, 32, 48), num_classes=10)


def test_demo_model_refuses_other_input_shapes() -> None:
    with pytest.raises(BadInputError, match=r"demo-vit: takes only 1x28x28 inputs"):
        create_model("demo-vit", input_shape=(3, 28, 28))


def test_bad_user_specs(tmp_path: Path, user_file: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        create_model(f"{tmp_path}/nope.py:Net")
    with pytest.raises(BadInputError, match="has no class or factory 'Missing'"):
        create_model(f"{user_file}:Missing")
    with pytest.raises(BadInputError, match="cannot import"):
        create_model("no_such_module_xyz:Net")


def test_unknown_model_lists_torchvision_and_demo_names() -> None:
    with pytest.raises(BadInputError, match=r"unknown model 'resnet19'; valid choices: .*demo-vit.*resnet18"):
        create_model("resnet19")


def test_a_new_family_is_one_registration() -> None:
    class Staged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stages = nn.ModuleList([nn.Conv2d(1, 2, 1), nn.Conv2d(2, 3, 1)])
            self.classify = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))

    with pytest.raises(BadInputError, match="cannot split Staged"):
        split_model(Staged(), "staged", (1, 4, 4))

    @register_splitter("test-staged", lambda m: isinstance(m, Staged))
    def split_staged(m: nn.Module):  # type: ignore[no-untyped-def]
        return list(m.stages), ["stages.0", "stages.1"], m.classify

    try:
        seq = split_model(Staged(), "staged", (1, 4, 4))
        assert [s.describe() for s in seq.feature_specs()] == ["map 2x4x4", "map 3x4x4"]
    finally:
        SPLITTERS._items.pop("test-staged")
