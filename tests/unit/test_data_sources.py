"""Data sources: built-in mnist5k, a folder of images, an .npz of arrays; deterministic splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restnet_compile.data import load_dataset, make_splits, split_sizes
from restnet_compile.data.sources import parse_source
from restnet_compile.errors import BadInputError


def _folder(root: Path) -> Path:
    """Two classes, images of different sizes and modes; class 'a' is dark, class 'b' bright."""
    for name, value, n in (("b_bright", 250, 3), ("a_dark", 10, 2)):
        (root / name).mkdir(parents=True)
        for k in range(n):
            size = (16, 16) if k % 2 else (20, 12)
            mode = "RGB" if k % 2 else "L"
            Image.new(mode, size, (value,) * 3 if mode == "RGB" else value).save(root / name / f"{k}.png")
    (root / "a_dark" / "notes.txt").write_text("not an image")
    return root


def test_folder_source_reads_resizes_and_labels_by_sorted_class(tmp_path: Path) -> None:
    ds = load_dataset(f"folder:{_folder(tmp_path / 'imgs')}", (1, 8, 8))
    assert ds.images.shape == (5, 1, 8, 8)
    assert ds.images.dtype == np.float32
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]  # a_dark before b_bright
    assert ds.num_classes == 2
    assert ds.images[:2].max() < 0.1
    assert ds.images[2:].min() > 0.9


def test_folder_source_rgb_and_plain_directory(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    ds = load_dataset(str(root), (3, 10, 10))
    assert ds.images.shape == (5, 3, 10, 10)


def test_folder_source_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}", (1, 8, 8))
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(BadInputError, match="at least 2"):
        load_dataset(f"folder:{tmp_path / 'one'}", (1, 8, 8))
    (tmp_path / "one" / "other").mkdir()
    with pytest.raises(BadInputError, match="no images"):
        load_dataset(f"folder:{tmp_path / 'one'}", (1, 8, 8))
    (tmp_path / "one" / "other" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BadInputError, match="cannot read image"):
        load_dataset(f"folder:{tmp_path / 'one'}", (1, 8, 8))


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_nhwc_uint8_becomes_nchw_floats(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(6, 5, 5, 3), dtype=np.uint8)
    path = _npz(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 2, 0, 1, 2]))
    ds = load_dataset(str(path), (3, 5, 5))
    assert ds.images.shape == (6, 3, 5, 5)
    assert np.allclose(ds.images[2, 1], images[2, :, :, 1] / 255.0)
    assert ds.num_classes == 3
    assert parse_source(str(path)) == ("npz", path)


def test_npz_grey_and_num_classes(tmp_path: Path) -> None:
    path = _npz(tmp_path / "g.npz", images=np.zeros((4, 7, 7), np.float32), labels=np.arange(4), num_classes=10)
    ds = load_dataset(f"npz:{path}", (1, 7, 7))
    assert ds.images.shape == (4, 1, 7, 7)
    assert ds.num_classes == 10


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"images": np.zeros((4, 1, 7, 7), np.float32)}, "missing array 'labels'"),
        ({"images": np.zeros((4, 1, 7, 7), np.float32), "labels": np.arange(3)}, "4 integers"),
        ({"images": np.full((4, 1, 7, 7), 2.0, np.float32), "labels": np.arange(4)}, r"\[0, 1\]"),
        ({"images": np.zeros((4, 1, 9, 9), np.float32), "labels": np.arange(4)}, "images are 1x9x9, the models take"),
        ({"images": np.zeros((4, 1, 7, 7), np.float32), "labels": np.array([0.5, 1, 2, 3])}, "integers"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict, words: str) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(BadInputError, match=words):
        np.asarray(load_dataset(str(path), (1, 7, 7)).images)  # pixels are checked when read


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.array([{"a": 1}], dtype=object), labels=np.arange(1))
    with pytest.raises(BadInputError, match=r"not a readable \.npz"):
        load_dataset(str(path), None)


def test_missing_npz_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        load_dataset(str(tmp_path / "none.npz"))
    with pytest.raises(BadInputError, match=r"unknown dataset 'mnist6k'; valid choices: mnist10k, mnist5k"):
        load_dataset("mnist6k")


def test_builtin_dataset_shape_check() -> None:
    assert load_dataset("mnist5k", (1, 28, 28)).images.shape == (5000, 1, 28, 28)
    with pytest.raises(BadInputError, match="images are 1x28x28, the models take 3x64x64"):
        load_dataset("mnist5k", (3, 64, 64))


def test_split_sizes_keep_the_demo_splits_and_scale_down() -> None:
    assert split_sizes(5000) == (500, 500, 1000)
    assert split_sizes(200) == (20, 20, 40)
    images = np.zeros((200, 1, 4, 4), np.float32)
    images[:, 0, 0, 0] = np.arange(200)
    from restnet_compile.data import Dataset

    ds = Dataset("toy", images, np.arange(200) % 2, 2)
    a, b = make_splits(ds, 3, *split_sizes(200)), make_splits(ds, 3, *split_sizes(200))
    assert len(a.train) == 120 and len(a.calib) == 20 and len(a.val) == 20 and len(a.test) == 40
    seen = np.concatenate([s.images[:, 0, 0, 0] for s in (a.train, a.calib, a.val, a.test)])
    assert sorted(seen.tolist()) == list(range(200))  # disjoint and complete
    assert np.array_equal(a.calib.images, b.calib.images)  # deterministic for a seed


def test_folder_images_follow_the_resize_and_crop_policy(tmp_path: Path) -> None:
    """Shorter side to ``resize``, centre ``crop``, then the model's size: a wide image keeps its centre."""
    from PIL import Image

    from restnet_compile._util.images import ImagePolicy

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        arr = np.zeros((40, 80), dtype=np.uint8)
        arr[:, 30:50] = 255  # a bright band in the middle third
        Image.fromarray(arr).save(tmp_path / label / "x.png")
    ds = load_dataset(f"folder:{tmp_path}", (1, 20, 20), ImagePolicy(resize=20, crop=10, interpolation="nearest"))
    assert ds.images.shape == (2, 1, 20, 20)
    assert ds.images[0].min() == 1.0  # the centre crop is inside the band, then enlarged to 20 x 20
    plain = load_dataset(f"folder:{tmp_path}", (1, 20, 20))
    assert plain.images[0].min() == 0.0  # squashed whole: the dark sides remain
