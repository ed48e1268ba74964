"""Garbage in is refused, not shipped: each refusal is one line with exit code 2 and nothing in the output folder;
conversions and files left out are said once. Tiny arrays; every refusal happens before tuning."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from torch import nn

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import load_profile
from restnet_compile.data import Dataset, Splits, load_dataset
from restnet_compile.data.checks import check_labels
from restnet_compile.errors import BadInputError
from restnet_compile.models.registry import shipped_weights
from restnet_compile.pipeline.costs import anchor_variant, stitched_variant
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.load import check_weights, load_models, load_splits
from tests.unit.fixture_models import SPECS

N = 60  # split sizes 6 / 6 / 12, 36 for training


def _digits(dtype: type = np.uint8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, size=(N, 1, 28, 28)).astype(dtype)


def _npz(path: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    np.savez(path, images=images, labels=np.arange(N) % 10 if labels is None else labels)
    return path


def _refused(run: Callable[[], object]) -> str:
    """The one line of a refusal: a ``BadInputError`` (exit code 2)."""
    with pytest.raises(BadInputError) as exc:
        run()
    assert exc.value.exit_code == 2 and "\n" not in str(exc.value)
    return str(exc.value)


def _read_all(path: Path) -> Callable[[], object]:
    """Open ``path`` as the build does and read every row, in batches, as CKA and tuning do."""

    def run() -> object:
        ds = load_dataset(str(path), (1, 28, 28))
        return [np.asarray(ds.images[i : i + 16]) for i in range(0, len(ds), 16)]

    return run


def _splits_of(path: Path) -> Callable[[], object]:
    return lambda: load_splits(BuildConfig(dataset=str(path)), _demo_large())


@functools.cache
def _demo_large() -> object:
    return load_models(BuildConfig())[0]


# --------------------------------------------------------------------------------------------- pixels


def test_a_nan_pixel_is_refused_naming_the_array_index(tmp_path: Path) -> None:
    images = _digits(np.float32) / 255
    images[37, 0, 5, 5] = np.nan
    path = _npz(tmp_path / "d.npz", images)
    assert _refused(_read_all(path)) == (
        f"data file {path}: image 37 has a non-finite pixel (nan); bad_images: skip leaves such images out"
    )


def test_float_pixels_outside_0_1_are_refused(tmp_path: Path) -> None:
    images = _digits(np.float32) / 255
    images[21, 0, 0, 0] = -0.5
    path = _npz(tmp_path / "d.npz", images)
    assert _refused(_read_all(path)) == (
        f"data file {path}: image 21 has pixel value -0.5, outside [0, 1] of float images (integer images are "
        "scaled: uint8 0..255, uint16 0..65535)"
    )


def test_integer_pixels_outside_8_bit_are_refused_when_read(tmp_path: Path) -> None:
    images = _digits(np.int64)
    images[4, 0, 1, 1] = 300
    ds = load_dataset(str(_npz(tmp_path / "d.npz", images)))
    assert np.asarray(ds.images[:4]).max() <= 1  # the rows before it read fine: checked as they stream
    line = _refused(lambda: ds.images[2:6])
    assert (
        line == f"data file {tmp_path}/d.npz: image 4 has pixel value 300, outside 0..255 of 8-bit images (int64 array)"
    )


def test_uint16_images_are_scaled_by_their_range(tmp_path: Path) -> None:
    images = np.full((N, 1, 28, 28), 65535, dtype=np.uint16)
    images[:, :, :, :14] = 0
    ds = load_dataset(str(_npz(tmp_path / "d.npz", images)))
    assert set(np.unique(ds.images[:3])) == {0.0, 1.0}


def test_skip_leaves_nonfinite_images_out_and_counts_them(tmp_path: Path) -> None:
    images = _digits(np.float32) / 255
    images[[3, 40], 0, 2, 2] = [np.inf, np.nan]
    ds = load_dataset(str(_npz(tmp_path / "d.npz", images)), bad_images="skip")
    assert len(ds) == N - 2 and np.isfinite(np.asarray(ds.images)).all()
    assert ds.skipped == (f"{tmp_path}/d.npz[3]", f"{tmp_path}/d.npz[40]")
    assert ds.notes == (
        f"left out 2 images with non-finite pixels (bad_images: skip): {tmp_path}/d.npz[3], {tmp_path}/d.npz[40]",
    )
    assert np.array_equal(ds.labels, np.delete(np.arange(N) % 10, [3, 40]))


# --------------------------------------------------------------------------------------------- labels and classes


def test_a_negative_label_is_named_with_its_index(tmp_path: Path) -> None:
    labels = np.arange(N) % 10
    labels[7] = -1
    path = _npz(tmp_path / "d.npz", _digits(), labels)
    assert _refused(_splits_of(path)) == f"data file {path}: label -1 at index 7 is outside [0, 10)"


def test_a_label_the_models_cannot_output_is_named(tmp_path: Path) -> None:
    labels = np.arange(N) % 10
    labels[[9, 11]] = [12, 13]
    path = _npz(tmp_path / "d.npz", _digits(), labels)
    assert _refused(_splits_of(path)) == (
        f"dataset {path}: label 12 at index 9 is outside [0, 10), the classes of model demo-large-cnn"
    )


def test_a_label_beyond_the_files_num_classes_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", images=_digits(), labels=np.arange(N) % 4, num_classes=3)
    assert _refused(lambda: load_dataset(str(tmp_path / "d.npz"))) == (
        f"data file {tmp_path}/d.npz: label 3 at index 3 is outside [0, 3), the classes of its num_classes"
    )


def test_a_split_of_one_class_is_refused(tmp_path: Path) -> None:
    labels = np.zeros(N, dtype=np.int64)
    labels[np.random.default_rng(0).permutation(N)[:12]] = 1  # every test image is a 1, every other image a 0
    path = _npz(tmp_path / "d.npz", _digits(), labels)
    assert _refused(_splits_of(path)) == (
        f"dataset {path}: the train split has only class 0 (36 images); every split needs at least 2 classes"
    )


def test_missing_classes_are_said(tmp_path: Path) -> None:
    splits = _splits_of(_npz(tmp_path / "d.npz", _digits(), np.arange(N) % 3))()
    assert splits.notes == ("data has 3 of the model's 10 classes",)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------- image folders


def _folder(root: Path, classes: int = 3, per_class: int = 20, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for k in range(per_class):
            shape = (8, 8, 3) if mode == "RGB" else (8, 8)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(root / f"c{c}" / f"{k}.png")
    return root


def test_a_folder_says_what_it_skipped_and_converted(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    for name in ("notes.txt", ".DS_Store", "labels.csv"):
        (root / "c1" / name).write_text("not an image")
    ds = load_dataset(str(root), (1, 8, 8))
    assert len(ds) == 60
    assert ds.notes == (
        "skipped 3 non-image files (images are .bmp, .gif, .jpeg, .jpg, .png)",
        "images are RGB, the models take 1 channel: converted to grey (ITU-R 601 weights)",
    )
    r, g, b = (np.asarray(Image.open(root / "c0" / "0.png"), dtype=np.float64)[..., k] for k in range(3))
    grey = ds.images[0][0]
    assert np.abs(grey * 255 - (0.299 * r + 0.587 * g + 0.114 * b)).max() <= 0.51  # ITU-R 601 luma, rounded to 8 bits


def test_grey_images_for_an_rgb_model_are_said(tmp_path: Path) -> None:
    ds = load_dataset(str(_folder(tmp_path / "imgs", 2, 4, mode="L")), (3, 8, 8))
    assert ds.notes == ("images are grey, the models take 3 channels: the grey value is repeated in R, G and B",)


# --------------------------------------------------------------------------------------------- weights


def test_a_model_without_weights_is_refused() -> None:
    spec = SPECS["digit_cnn"]
    config = BuildConfig.model_validate({"large": spec, "input_shape": [1, 28, 28], "num_classes": 10})
    assert _refused(lambda: check_weights(config, "large")) == (
        f"model {spec} (large): no weights given, so it would run with random weights; give large_weights (a "
        "checkpoint file or a timm / hub folder), or set allow_random_weights: true"
    )
    check_weights(config, "small")  # a demo model: its weights ship with the package
    check_weights(config.model_copy(update={"allow_random_weights": True}), "large")
    check_weights(config.model_copy(update={"large_weights": "digit_cnn.pth"}), "large")
    assert "allow_random_weights" not in config.model_dump()  # it changes no byte of a bundle: not in its hash


def _one_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


@pytest.mark.parametrize("kind", ["all-zero", "nan"])
def test_a_checkpoint_without_trained_weights_is_refused(kind: str, tmp_path: Path) -> None:
    state = torch.load(shipped_weights("demo-large-cnn"), weights_only=True)
    floats = [k for k, v in state.items() if v.is_floating_point()]
    change = torch.zeros_like if kind == "all-zero" else _one_nan
    torch.save({k: change(v) if k in floats else v for k, v in state.items()}, tmp_path / "bad.pt")
    config = BuildConfig(large_weights=str(tmp_path / "bad.pt"), allow_random_weights=True)  # no way round it
    why = (
        f"is all zeros ({len(floats)} tensors)"
        if kind == "all-zero"
        else f"has a non-finite value (nan) in {floats[0]!r}"
    )
    assert _refused(lambda: load_models(config)) == (
        f"model demo-large-cnn: checkpoint {tmp_path}/bad.pt {why}; it holds no trained weights"
    )


# --------------------------------------------------------------------------------------------- logits


class _Broken(nn.Module):
    blocks = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 10)
        out[2:, 3] = float("inf")
        return out


def _splits() -> Splits:
    x = np.zeros((8, 1, 4, 4), dtype=np.float32)
    ds = Dataset("d", x, np.arange(8) % 2, 2)
    return Splits(ds, ds, ds, ds)


def test_non_finite_anchor_logits_are_refused_naming_variant_and_stage() -> None:
    line = _refused(lambda: anchor_variant("large", _Broken(), _splits(), SimpleNamespace()))  # type: ignore[arg-type]
    assert line == (
        "variant large: non-finite logits at validation accuracy (image 2 of the validation split); its weights or "
        "their input are broken"
    )


def _stitch(variant_id: str, net: nn.Module) -> SimpleNamespace:
    point = SimpleNamespace(front_tag="L", back_tag="S", front_block=1, back_block=1, variant_id=variant_id)
    candidate = SimpleNamespace(point=point, adapter="conv-bn-relu", cka=0.5)
    return SimpleNamespace(
        candidate=candidate,
        net=net,
        ls_r2=0.1,
        tune=SimpleNamespace(val_accuracy=0.5, val_accuracy_init=0.4, epochs_run=1, best_epoch=1),
    )


class _Fine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 10)


def test_a_stitch_with_non_finite_logits_is_dropped_with_its_reason() -> None:
    cost = SimpleNamespace(latency_ms=1.0, ram_bytes=1, flash_bytes=1, flops=1, dtype=None, ops=None, arena_bytes=None)
    good = stitched_variant(_stitch("L2-S2", _Fine()), _splits(), cost)  # type: ignore[arg-type]
    broken = stitched_variant(_stitch("L1-S1", _Broken()), _splits(), cost)  # type: ignore[arg-type]
    assert good.unusable is None and good.test_accuracy == 0.5
    assert broken.test_accuracy == 0.125  # rows with a non-finite logit are misses
    assert broken.unusable == "variant L1-S1: non-finite logits at test accuracy (image 2 of the test split)"
    decided = {v.id: v.decision for v in decide([good, broken], load_profile("phone"), BuildConfig(), 8)}
    assert decided["L2-S2"].selected and not decided["L1-S1"].feasible and not decided["L1-S1"].selected
    assert decided["L1-S1"].reasons == (broken.unusable,)


# --------------------------------------------------------------------------------------------- the property


def _in_range(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int64, np.float32, np.float64]))
    shape = draw(st.sampled_from([(1, 4, 4), (3, 4, 4), (4, 4), (4, 4, 3)]))
    n = draw(st.integers(2, 6))
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(0, 1, width=32 if dtype == np.float32 else 64)
    else:
        elements = st.integers(0, 65535 if dtype == np.uint16 else 255)
    return draw(hnp.arrays(dtype, (n, *shape), elements=elements))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_finite_in_range_dataset_is_never_refused(data: st.DataObject) -> None:
    images = _in_range(data.draw)
    classes = data.draw(st.integers(2, 5))
    labels = np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=len(images), max_size=len(images))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        np.savez(path, images=images, labels=labels, num_classes=classes)
        ds = load_dataset(str(path), bad_images=data.draw(st.sampled_from(["fail", "skip"])))
        read = np.asarray(ds.images)
        check_labels(ds.labels, classes, "d")
    assert len(ds) == len(images) and not ds.skipped and not ds.notes
    assert np.isfinite(read).all() and read.min() >= 0 and read.max() <= 1
