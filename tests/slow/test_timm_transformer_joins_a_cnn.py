"""Slow (`make test-slow`): a timm CNN's prefix joins a timm transformer's suffix.

The CNN is the shipped trained fixture ``timm:test_resnet`` (digits normalised with mean 0.1307 / std 0.3081, its
folder's ``config.json``); the transformer is timm's ``test_vit`` (a DeiT-style VisionTransformer: 16 px patches, a
class token, 6 blocks of width 64) created for 1 x 32 x 32 inputs (4 patches), trained here for a few hundred steps
on digits normalised with timm's ImageNet statistics, and saved as a timm folder (``deit_tiny_patch16_224`` is the
same architecture at width 192 and depth 12, too slow to train in a test on 2 cores). The digits are mnist5k padded
to 32 px. Each model keeps its own preprocessing contract.

The bundle is float TFLite, whose exact GELU goes through the exporter's polynomial erf. The stitched variant comes
within 5.5e-4 of PyTorch through TFLite and 8.9e-4 through ONNX Runtime (logits up to 6): more than the built-in
float rule allows (1e-4 + 1e-5 x max |logit|), so the build uses a copy of ``tflite-fp32`` with ``max_rel_diff``
2e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import builtin_text
from restnet_compile.data import load_dataset, make_splits, split_sizes
from restnet_compile.models.preprocess_meta import preprocess_meta
from restnet_compile.models.timm_source import create_timm
from tests.unit.fixture_models import SPECS, trained_path

pytestmark = pytest.mark.slow

SHAPE = (1, 32, 32)
VIT = "test_vit"


def _digits_32(out: Path) -> Path:
    """mnist5k padded from 28 to 32 px, as a uint8 ``.npz`` in the dataset's own order."""
    ds = load_dataset("mnist5k")
    images = np.pad(np.round(ds.images * 255).astype(np.uint8), ((0, 0), (0, 0), (2, 2), (2, 2)))
    path = out / "digits32.npz"
    np.savez(path, images=images, labels=ds.labels.astype(np.int64))
    return path


def _trained_vit(out: Path, data: Path, steps: int = 300) -> Path:
    """The ViT for 32 px digits, trained with Adam on the build's own training split, as a timm folder."""
    torch.manual_seed(0)
    model = create_timm(f"timm:{VIT}", None, SHAPE, 10)[0]
    meta = preprocess_meta(model)
    assert meta is not None
    mean, std = sum(meta.mean) / len(meta.mean), sum(meta.std) / len(meta.std)
    ds = load_dataset(str(data))
    train = make_splits(ds, 0, *split_sizes(len(ds))).train
    x = (torch.from_numpy(np.asarray(train.images, np.float32)) - mean) / std
    y = torch.from_numpy(np.asarray(train.labels))
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = out / VIT
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": VIT, "num_classes": 10}))
    return folder


def _float_target(out: Path) -> Path:
    """``tflite-fp32`` with a float rule of 1e-4 + 2e-4 x max |logit|."""
    data = yaml.safe_load(builtin_text("targets", "tflite-fp32"))
    data["name"] = "tflite-fp32-transformer"
    data["parity"]["max_rel_diff"] = 2e-4
    path = out / "tflite-fp32-transformer.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_timm_transformer_joins_a_cnn(tmp_path: Path) -> None:
    data = _digits_32(tmp_path)
    vit = _trained_vit(tmp_path, data)
    config = BuildConfig.model_validate(
        {
            "large": SPECS["timm"],
            "small": f"timm:{VIT}",
            "large_weights": str(trained_path("timm")),
            "small_weights": str(vit),
            "input_shape": list(SHAPE),
            "num_classes": 10,
            "dataset": str(data),
            "profile": "phone",
            "target": str(_float_target(tmp_path)),
            "plan": {"max_candidates": 1},
            "tune": {"epochs": 1},
            "selection": "feasible",
        }
    )
    m = api.build(config, tmp_path / "out", cache=False).manifest
    # each donor's own contract: the CNN's folder says digits statistics, the transformer's timm metadata ImageNet's
    assert m.models.large.preprocess is not None and m.models.large.preprocess.mean == (0.1307,)
    assert m.models.small.preprocess is not None and m.models.small.preprocess.source == "timm pretrained_cfg"
    assert m.variant("large").accuracy_fp32 > 0.9 and m.variant("small").accuracy_fp32 > 0.8
    stitched = [v for v in m.variants if v.kind == "stitched"]
    assert stitched and all(v.stitch.adapter == "map-to-tokens" for v in stitched), [v.stitch for v in stitched]
    shipped = [v for v in m.shipped() if v.kind == "stitched"]
    assert shipped and all(v.parity is not None and v.parity.max_abs_diff < 2e-3 for v in shipped)
    best = max(stitched, key=lambda v: v.accuracy_fp32)
    # one candidate, one tuning epoch: well above chance (10 classes), not yet the anchors' accuracy
    assert best.accuracy_fp32 > 0.5, [(v.id, v.accuracy_fp32) for v in stitched]
