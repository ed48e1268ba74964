"""File sources read per batch: folders decoded lazily, .npz memory-mapped, bad and vanishing images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restnet_compile.data import load_dataset, make_splits
from restnet_compile.data.lazy import LazyImages, images_digest
from restnet_compile.data.npz import NpzImages
from restnet_compile.errors import BadInputError


def _jpeg_folder(root: Path, per_class: int = 6, size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{k:03d}.jpg", quality=90)
    return root


def _truncated_jpeg(path: Path) -> None:
    """A JPEG whose header is whole but whose pixel data stop early."""
    pixels = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _digest(images: object) -> str:
    h = hashlib.sha256()
    images_digest(h, images)  # type: ignore[arg-type]
    return h.hexdigest()


def test_folder_images_are_read_per_batch_with_the_same_values(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    ds = load_dataset(str(root), (3, 8, 8))
    assert isinstance(ds.images, LazyImages) and ds.images.shape == (12, 3, 8, 8)
    whole = np.asarray(ds.images)
    assert np.array_equal(ds.images[3:7], whole[3:7])
    assert np.array_equal(ds.images[np.array([9, 0, 4])], whole[[9, 0, 4]])
    assert np.array_equal(ds.images[5], whole[5])
    splits = make_splits(ds, seed=0, calib=2, val=2, test=2)
    assert isinstance(splits.train.images, LazyImages)  # a split reads nothing until indexed
    order = np.random.default_rng(0).permutation(12)
    assert np.array_equal(splits.calib.images[:], whole[order[4:6]])  # the same seeded indices as in memory


def test_folder_digest_follows_file_contents_not_decoding(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    before = _digest(load_dataset(str(root), (3, 8, 8)).images)
    assert before == _digest(load_dataset(str(root), (3, 8, 8)).images)
    Image.new("RGB", (12, 12), (1, 2, 3)).save(root / "class0" / "000.jpg")
    assert _digest(load_dataset(str(root), (3, 8, 8)).images) != before


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_images_are_memory_mapped_in_both_zip_kinds(tmp_path: Path, save: object) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(9, 6, 6, 3), dtype=np.uint8)
    path = tmp_path / "d.npz"
    save(path, images=images, labels=np.arange(9) % 3)  # type: ignore[operator]
    ds = load_dataset(str(path), (3, 6, 6))
    assert isinstance(ds.images, NpzImages) and isinstance(ds.images.raw, np.memmap)
    expected = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    assert np.array_equal(np.asarray(ds.images), expected)
    assert np.array_equal(ds.images[np.array([8, 1])], expected[[8, 1]])
    temp = ds.images.temp
    assert (temp is None) == (save is np.savez)  # only a compressed member is extracted
    if temp is not None:
        assert temp.is_file()
        del ds
        import gc

        gc.collect()
        assert not temp.parent.exists()  # the extracted copy goes with its images


def test_an_unreadable_image_is_named_and_fatal_by_default(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    (root / "class1" / "zzz.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(
        BadInputError, match=r"cannot read image .*zzz\.jpg.*--bad-images skip \(config: bad_images: skip\)"
    ):
        load_dataset(str(root), (3, 8, 8))


def test_bad_images_skip_leaves_them_out_and_names_them(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    (root / "class1" / "zzz.jpg").write_bytes(b"garbage")
    _truncated_jpeg(root / "class0" / "002.jpg")  # the header still reads
    ds = load_dataset(str(root), (3, 8, 8), bad_images="skip")
    assert len(ds) == 11 and ds.labels.tolist() == [0] * 5 + [1] * 6
    assert [Path(p).name for p in ds.skipped] == ["002.jpg", "zzz.jpg"]
    assert np.asarray(ds.images).shape == (11, 3, 8, 8)


def test_a_truncated_image_is_named_when_it_is_read(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    _truncated_jpeg(root / "class0" / "002.jpg")
    ds = load_dataset(str(root), (3, 8, 8))  # fail: only the header is checked while loading
    assert np.asarray(ds.images[:2]).shape == (2, 3, 8, 8)
    with pytest.raises(BadInputError, match=r"cannot decode image .*002\.jpg"):
        ds.images[:4]


def test_a_file_that_vanishes_during_the_build_is_named(tmp_path: Path) -> None:
    root = _jpeg_folder(tmp_path / "imgs")
    ds = load_dataset(str(root), (3, 8, 8))
    (root / "class1" / "003.jpg").unlink()
    assert ds.images[:6].shape == (6, 3, 8, 8)  # the files still there read as before
    with pytest.raises(BadInputError, match=r"image .*class1/003\.jpg vanished during the build"):
        np.asarray(ds.images)


def test_every_image_bad_is_refused(tmp_path: Path) -> None:
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "x.png").write_bytes(b"nope")
    with pytest.raises(BadInputError, match="none of its 2 images can be read"):
        load_dataset(str(tmp_path), (3, 8, 8), bad_images="skip")
