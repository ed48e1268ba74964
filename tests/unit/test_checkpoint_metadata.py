"""A state_dict's ``_metadata`` (module versions) survives every checkpoint format: MNASNet from safetensors."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from restnet_compile.models.checkpoints import load_checkpoint, save_checkpoint
from restnet_compile.models.sources import ModelOptions, torchvision_factory

SHAPE = (3, 32, 32)


def scramble(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics, so that two models differ in every output (at init many are ~0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or (t.dim() == 1 and name.endswith("weight")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # variances and norm scales stay positive
            elif t.dim() >= 2:
                t.copy_(torch.randn(t.shape, generator=g) / t[0].numel() ** 0.5)  # unit gain per layer
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()


def _mnasnet(seed: int) -> nn.Module:
    model = torchvision_factory("mnasnet0_5")("mnasnet0_5", ModelOptions(input_shape=SHAPE, num_classes=10))
    return scramble(model, seed)


def test_mnasnet_weights_saved_as_safetensors_load_and_compute_the_same(tmp_path: Path) -> None:
    """safetensors keeps tensors only; MNASNet's loader refuses a state_dict without its ``version``."""
    donor = _mnasnet(1)
    path = tmp_path / "mnasnet.safetensors"
    save_file(donor.state_dict(), str(path))  # as a user writes it: no header metadata
    opts = ModelOptions(weights=path, input_shape=SHAPE, num_classes=10)
    model = torchvision_factory("mnasnet0_5")("mnasnet0_5", opts).eval()  # what create_model builds, before the split
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        expected = donor(x)
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
        assert not torch.allclose(_mnasnet(2)(x), expected, rtol=0.1)  # the file made the match


class _Versioned(nn.Module):
    """Records the ``version`` its loader sees, as MNASNet and BatchNorm read it."""

    _version = 3

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.seen: object = "not loaded"

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args):  # type: ignore[no-untyped-def]
        self.seen = local_metadata.get("version")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def test_save_checkpoint_keeps_the_versions_in_the_safetensors_header(tmp_path: Path) -> None:
    donor = _Versioned()
    donor._version = 1  # an older format than the code's own: the header must carry it, not the module's default
    path = tmp_path / "v.safetensors"
    save_checkpoint(donor, path)
    model = _Versioned()
    load_checkpoint(model, path, "v")
    assert model.seen == 1
    bare = tmp_path / "bare.safetensors"
    save_file(dict(donor.state_dict()), str(bare))
    load_checkpoint(model, bare, "v")
    assert model.seen == 3  # no header metadata: the module's own


def test_a_data_parallel_checkpoint_keeps_its_versions(tmp_path: Path) -> None:
    donor = _Versioned()
    donor._version = 2
    state = donor.state_dict()
    wrapped = OrderedDict((f"module.{k}", v) for k, v in state.items())
    wrapped._metadata = OrderedDict(  # type: ignore[attr-defined]
        ("module" + (f".{k}" if k else ""), v)
        for k, v in state._metadata.items()  # type: ignore[attr-defined]
    )
    path = tmp_path / "dp.pt"
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    model = _Versioned()
    load_checkpoint(model, path, "dp")
    assert model.seen == 2
