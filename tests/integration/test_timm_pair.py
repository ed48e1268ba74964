"""A timm pair by name (timm:resnet18 -> timm:mobilenetv3_small_050) builds a phone bundle at a small input size.

Random weights with BatchNorm statistics estimated on digits normalised as the build feeds them (timm's ImageNet
statistics from ``pretrained_cfg``, averaged for one channel), saved as timm folders (model.safetensors +
config.json): no hub is reached. Random weights leave near-tied logits, so the bundle is float (tflite-fp32): its
parity rule is a logit difference, which rounding meets whatever the margins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.models.preprocess_meta import preprocess_meta
from restnet_compile.models.timm_source import create_timm
from tests.unit.fixture_models import MNIST, estimate_batchnorm

PAIR = ("resnet18", "mobilenetv3_small_050")


def _timm_folder(root: Path, arch: str, digits: torch.Tensor) -> Path:
    torch.manual_seed(0)
    model = create_timm(f"timm:{arch}", None, MNIST, 10)[0]
    meta = preprocess_meta(model)
    assert meta is not None
    mean, std = sum(meta.mean) / len(meta.mean), sum(meta.std) / len(meta.std)
    estimate_batchnorm(model, (digits - mean) / std)
    folder = root / arch
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": arch, "num_classes": 10}))
    return folder


@pytest.mark.slow  # two timm models at 28 px with BatchNorm estimated, then a phone build: about a minute
def test_timm_pair_builds_a_phone_bundle(tmp_path: Path) -> None:
    from restnet_compile.data import load_dataset

    digits = torch.from_numpy(load_dataset("mnist5k").images[:256].copy())
    large, small = (_timm_folder(tmp_path, arch, digits) for arch in PAIR)
    config = BuildConfig.model_validate(
        {
            "large": f"timm:{PAIR[0]}",
            "small": f"timm:{PAIR[1]}",
            "large_weights": str(large),
            "small_weights": str(small),
            "input_shape": list(MNIST),
            "num_classes": 10,
            "dataset": "mnist5k",
            "profile": "phone",
            "target": "tflite-fp32",
            "plan": {"max_candidates": 1},
            "tune": {"epochs": 0, "match_epochs": 0},
            "selection": "feasible",
        }
    )
    m = api.build(config, tmp_path / "out", cache=False).manifest
    assert m.models.large.name == "timm:resnet18" and m.models.small.name == "timm:mobilenetv3_small_050"
    # timm's ImageNet statistics (its pretrained_cfg), averaged for one channel, run inside every variant
    assert m.models.large.preprocess is not None and m.models.large.preprocess.source == "timm pretrained_cfg"
    assert m.profile.name == "phone"
    assert "stitched" in {v.kind for v in m.shipped()}
    assert all(v.parity is not None for v in m.shipped())
