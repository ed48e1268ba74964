"""MNIST-style IDX folders (``idx:DIR`` or a directory of IDX files): read lazily, gzipped or not, held-out pair
first and the training pair kept for training; bad files refused in one line."""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

from restnet_compile.data import load_dataset, make_splits
from restnet_compile.data.idx import IdxImages
from restnet_compile.data.sources import parse_source
from restnet_compile.errors import BadInputError


def _idx(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}[array.dtype]
    head = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.tobytes()


def _write(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    ext = ".gz" if gz else ""
    opener = gzip.compress if gz else (lambda b: b)
    (folder / f"{prefix}-images-idx3-ubyte{ext}").write_bytes(opener(_idx(images)))
    (folder / f"{prefix}-labels-idx1-ubyte{ext}").write_bytes(opener(_idx(labels)))


def _pairs(folder: Path, gz: bool, n_train: int = 40, n_test: int = 30) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, n_train).astype(np.uint8)
    test_y = (np.arange(n_test) % 10).astype(np.uint8)
    _write(folder, "train", train, train_y, gz)
    _write(folder, "t10k", test, test_y, gz)
    return train, train_y, test, test_y


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_folder_reads_held_out_first_and_keeps_train_for_training(tmp_path: Path, gz: bool) -> None:
    train, train_y, test, test_y = _pairs(tmp_path, gz)
    for spec in (f"idx:{tmp_path}", str(tmp_path)):  # named, or detected in a plain directory
        assert parse_source(spec) == ("idx", tmp_path)
        ds = load_dataset(spec, (1, 28, 28))
        assert isinstance(ds.images, IdxImages) and len(ds) == 70 and ds.num_classes == 10
        assert ds.train_only == 40  # the training pair comes last and only the training split gets it
        np.testing.assert_array_equal(ds.labels, np.concatenate([test_y, train_y]))
        np.testing.assert_array_equal(ds.images[:30], test[:, None].astype(np.float32) / 255)
        np.testing.assert_array_equal(ds.images[[69, 0, 35]][0, 0], train[39] / np.float32(255))
    splits = make_splits(ds, seed=0, calib=4, val=6, test=10)
    held = set(range(30))
    for part in (splits.calib, splits.val, splits.test):  # drawn from the held-out pair alone
        assert set(part.images.idx.tolist()) <= held  # type: ignore[union-attr]
    assert len(splits.train) == 40 + 10


def test_idx_images_are_resized_and_repeated_for_rgb_models(tmp_path: Path) -> None:
    _, _, test, _ = _pairs(tmp_path, gz=True)
    ds = load_dataset(f"idx:{tmp_path}", (3, 32, 32))
    x = ds.images[:2]
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x[:, 0], x[:, 2])  # grey repeated over the three channels
    same = load_dataset(f"idx:{tmp_path}", (3, 28, 28)).images[:2]
    np.testing.assert_array_equal(same[:, 1], test[:2] / np.float32(255))


def test_a_single_pair_is_split_as_one_pool(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write(tmp_path, "data", rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 4, False)
    ds = load_dataset(str(tmp_path))
    assert len(ds) == 20 and ds.train_only == 0 and ds.num_classes == 4 and ds.images.shape == (20, 1, 8, 8)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("labels_count", "holds 30 images but t10k-labels-idx1-ubyte 29 labels"),
        ("magic", "not an IDX file"),
        ("truncated", "its IDX header promises"),
        ("no_labels", "has no labels file t10k-labels-idx1-ubyte"),
    ],
)
def test_bad_idx_files_are_refused_in_one_line(tmp_path: Path, damage: str, message: str) -> None:
    _pairs(tmp_path, gz=False)
    labels, images = tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "t10k-images-idx3-ubyte"
    if damage == "labels_count":
        labels.write_bytes(_idx((np.arange(29) % 10).astype(np.uint8)))
    elif damage == "magic":
        images.write_bytes(b"\x01\x02" + images.read_bytes()[2:])
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-5])
    else:
        labels.unlink()
    with pytest.raises(BadInputError, match=message) as err:
        load_dataset(f"idx:{tmp_path}", (1, 28, 28))
    assert "\n" not in str(err.value)


def test_idx_images_of_other_channels_are_refused(tmp_path: Path) -> None:
    _pairs(tmp_path, gz=False)
    with pytest.raises(BadInputError, match="images have 1 channel\\(s\\), the models take 2"):
        load_dataset(f"idx:{tmp_path}", (2, 28, 28))


def test_held_out_test_keeps_the_held_out_pair_for_the_test_split_alone(tmp_path: Path) -> None:
    _pairs(tmp_path, gz=False)
    ds = load_dataset(f"idx:{tmp_path}", (1, 28, 28))
    splits = make_splits(ds, seed=3, calib=4, val=6, test=30, held_out="test")
    assert splits.test.images.idx.tolist() == list(range(30))  # type: ignore[union-attr]  # every held-out image
    drawn = [set(p.images.idx.tolist()) for p in (splits.train, splits.calib, splits.val)]  # type: ignore[union-attr]
    assert all(min(d) >= 30 for d in drawn) and sum(map(len, drawn)) == 40 == len(set().union(*drawn))
    assert (len(splits.train), len(splits.calib), len(splits.val)) == (30, 4, 6)
    again = make_splits(ds, seed=3, calib=4, val=6, test=30, held_out="test")
    assert again.val.images.idx.tolist() == splits.val.images.idx.tolist()  # type: ignore[union-attr]
    part = make_splits(ds, seed=3, calib=4, val=6, test=12, held_out="test").test.images.idx  # type: ignore[union-attr]
    assert len(set(part.tolist())) == 12 and part.max() < 30
    with pytest.raises(BadInputError, match=r"30 held-out samples, splits\.test asks for 31"):
        make_splits(ds, seed=3, calib=4, val=6, test=31, held_out="test")
    with pytest.raises(BadInputError, match=r"40 training-only samples, need more than calib\+val = 40"):
        make_splits(ds, seed=3, calib=20, val=20, test=30, held_out="test")


def test_held_out_test_needs_a_held_out_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write(tmp_path, "data", rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 4, False)
    refused = r"^splits\.held_out: test needs a held-out file .*; dataset .* has none; choose all$"
    with pytest.raises(BadInputError, match=refused):
        make_splits(load_dataset(str(tmp_path)), calib=4, val=4, test=4, held_out="test")


def test_a_killed_builds_decompressed_file_is_swept_by_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from restnet_compile._util.tempdirs import owner_tag
    from restnet_compile.data.idx import IDX_PREFIX
    from restnet_compile.pipeline.executor import sweep_temp

    data, temp = tmp_path / "data", tmp_path / "temp"
    data.mkdir(), temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    _pairs(data, gz=True)
    ds = load_dataset(f"idx:{data}", (1, 28, 28))
    mine = sorted(p.name for p in temp.iterdir())
    assert len(mine) == 2 and all(n.startswith(f"{IDX_PREFIX}{owner_tag()}.") for n in mine)  # one per gzipped pair
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = temp / f"{IDX_PREFIX}{owner_tag().rsplit('.', 1)[0]}.{dead.pid}.x1"
    left.mkdir()
    (left / "train-images-idx3-ubyte").write_bytes(b"0" * 64)
    assert sweep_temp() == [left.name]  # the dead process's folder goes; this process's, in use, stay
    assert sorted(p.name for p in temp.iterdir()) == mine and ds.images[:1].shape == (1, 1, 28, 28)
