"""Feature stores for tuning (ram, mmap, mmap-fp16, recompute) and the memory budget that picks one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile.config.build import BuildConfig, TuneSettings
from restnet_compile.data import Dataset, Splits, load_dataset, make_splits
from restnet_compile.errors import BadInputError
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.pipeline.build_memory import batch_bytes, check_batch_fits, choose_feature_store, memory_budget
from restnet_compile.stitching import Candidate, StitchPoint, build_stitched
from restnet_compile.stitching.build import FeatureStore, prefix_cache
from restnet_compile.stitching.tuning.store import (
    FileRows,
    RamRows,
    RowsWriter,
    channel_variance,
)

#: What the fp16 and recompute stores may change in a tuned adapter, against the ram store: validation accuracy
#: within this (absolute), and each adapter weight within 5 % of the largest weight's magnitude.
ACCURACY_TOLERANCE = 0.02
WEIGHT_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def models() -> tuple[BlockSequence, BlockSequence]:
    return create_model("demo-large-cnn"), create_model("demo-small-cnn")


@pytest.fixture(scope="module")
def small_splits() -> Splits:
    ds = load_dataset("mnist5k")
    few = Dataset("mnist5k-500", ds.images[:500], ds.labels[:500], 10)
    return make_splits(few, seed=0, calib=60, val=100, test=20)


def test_writer_fills_every_kind_with_the_same_rows(tmp_path: Path) -> None:
    data = torch.randn(23, 3, 4, 4)
    stores = {}
    for kind in ("ram", "mmap", "mmap-fp16"):
        w = RowsWriter(kind, 23, tmp_path)
        for i in range(0, 23, 10):
            w.append(data[i : i + 10])
        stores[kind] = w.finish()
    assert isinstance(stores["ram"], RamRows) and isinstance(stores["mmap"], FileRows)
    idx = torch.tensor([22, 0, 5, 5, 13])
    assert torch.equal(stores["ram"][idx], data[idx])
    assert torch.equal(stores["mmap"][idx], data[idx])  # float32 on disk: exactly the values
    assert torch.equal(stores["mmap"][3:9], data[3:9])
    assert torch.allclose(stores["mmap-fp16"][idx], data[idx], rtol=2**-10, atol=1e-4)
    assert stores["mmap-fp16"][idx].dtype == torch.float32
    double = stores["mmap"].map(lambda t: t * 2, 7)
    assert isinstance(double, FileRows) and torch.equal(double[idx], data[idx] * 2)
    assert torch.equal(channel_variance(stores["mmap"]), channel_variance(stores["ram"]))
    assert torch.equal(channel_variance(stores["ram"]), data.var((0, 2, 3), keepdim=True))


def _tune(models, splits: Splits, kind: str, folder: Path) -> tuple[dict[str, torch.Tensor], float]:  # type: ignore[no-untyped-def]
    front, back = models
    cand = Candidate(StitchPoint(1, 1), 0.9, "conv-bn-relu")
    store = FeatureStore(kind, folder)  # type: ignore[arg-type]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums depend on the threads: the same count for every store compared
    try:
        cache = prefix_cache(front, front, [cand], splits, "cpu", store)
        cfg = TuneSettings(epochs=1, match_epochs=1)
        sv = build_stitched(front, back, cand, splits, cfg, seed=0, cache=cache, store=store)
    finally:
        torch.set_num_threads(threads)
    return {k: v.clone() for k, v in sv.net.adapter.state_dict().items()}, sv.tune.val_accuracy


@pytest.fixture(scope="module")
def tuned_in_ram(models, small_splits: Splits, tmp_path_factory) -> tuple[dict[str, torch.Tensor], float]:  # type: ignore[no-untyped-def]
    return _tune(models, small_splits, "ram", tmp_path_factory.mktemp("ram"))


def test_ram_and_mmap_tune_the_same_adapter_bit_for_bit(models, small_splits, tuned_in_ram, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ram, acc_ram = tuned_in_ram
    mm, acc_mm = _tune(models, small_splits, "mmap", tmp_path)
    assert acc_ram == acc_mm
    assert all(torch.equal(ram[k], mm[k]) for k in ram)


@pytest.mark.parametrize("kind", ["mmap-fp16", "recompute"])
def test_fp16_and_recompute_stay_within_the_documented_tolerance(models, small_splits, tuned_in_ram, tmp_path, kind):  # type: ignore[no-untyped-def]
    ram, acc_ram = tuned_in_ram
    other, acc = _tune(models, small_splits, kind, tmp_path)
    assert abs(acc - acc_ram) <= ACCURACY_TOLERANCE
    for k, v in ram.items():
        if v.is_floating_point() and v.numel():
            assert float((other[k] - v).abs().max()) <= WEIGHT_TOLERANCE * max(float(v.abs().max()), 1e-6), k


def test_auto_store_follows_the_budget(tmp_path: Path) -> None:
    small = BuildConfig(max_memory="100MB")
    assert choose_feature_store(small, 10**7, 10**6, tmp_path).kind == "ram"
    assert choose_feature_store(small, 2 * 10**8, 10**6, tmp_path).kind == "mmap"
    huge = 10**18  # more than any disk
    choice = choose_feature_store(small, huge, 10**6, tmp_path)
    assert choice.kind == "recompute" and "last bits" in choice.reason
    assert (
        choose_feature_store(BuildConfig(max_memory="100MB", feature_store="mmap-fp16"), 1, 1, tmp_path).kind
        == "mmap-fp16"
    )
    assert memory_budget(BuildConfig()) > 0  # a share of this machine's memory


def test_a_budget_below_one_batch_is_refused(models) -> None:  # type: ignore[no-untyped-def]
    large, small = models
    need = max(batch_bytes(large), batch_bytes(small))
    check_batch_fits(BuildConfig(max_memory=f"{need}B"), large, small)
    with pytest.raises(BadInputError, match=r"max_memory 1KB is below what one batch needs \(.*\); give at least"):
        check_batch_fits(BuildConfig(max_memory="1KB"), large, small)


def test_cli_max_memory_too_small_writes_nothing(cli_in_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "dist"
    r = cli_in_process("build", "--data", "mnist5k", "--max-memory", "1KB", "--out", str(out), "--no-cache")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "below what one batch needs" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    bad = cli_in_process("build", "--max-memory", "lots", "--out", str(out), "--no-cache")
    assert bad.returncode == 2 and "max_memory 'lots'" in bad.stderr


def test_features_spill_to_files_that_are_removed(models, small_splits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    front, _ = models
    cand = Candidate(StitchPoint(2, 1), 0.9, "conv-bn-relu")
    cache = prefix_cache(front, front, [cand], small_splits, "cpu", FeatureStore("mmap", tmp_path))
    train, val = cache[2]
    assert isinstance(train.feats, FileRows) and len(train.feats) == len(small_splits.train)
    assert isinstance(train.teacher, FileRows) and train.teacher.shape == (len(small_splits.train), 10)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin"] * 4  # features and logits of train and val
    np.testing.assert_array_equal(val.labels.numpy(), small_splits.val.labels)
