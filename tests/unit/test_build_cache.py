"""The build cache (crash safety): content-addressed store, keys, corrupt entries, atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from restnet_compile._util.progress import Reporter
from restnet_compile._util.tempdirs import make_owned_dir, owner_tag, remove_stale
from restnet_compile.bundle.writer import STAGING_PATTERN, staging
from restnet_compile.config.build import PAIR_FIELDS, BuildConfig
from restnet_compile.data import Dataset, Splits
from restnet_compile.models import create_model
from restnet_compile.pipeline import cka, export, tune
from restnet_compile.pipeline.cache.disk import (
    CACHE_ENV,
    ENTRY_FILE,
    DiskCache,
    cache_key,
    default_cache_dir,
    npy_bytes,
    npy_load,
)
from restnet_compile.pipeline.cache.fingerprint import array_digest, module_digest, splits_digest
from restnet_compile.pipeline.cache.stages import StageCache

KEY = cache_key("test", 1, {"a": 1})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _entry_dir(store: DiskCache, key: str) -> Path:
    return store.entries / key[:2] / key


def test_hit_returns_what_was_stored_and_miss_is_none(tmp_path: Path) -> None:
    store = DiskCache(tmp_path / "c")
    assert store.get(KEY) is None
    store.put(KEY, {"x": [1, 2.5, "s"]}, {"a.bin": b"\x00\x01", "sub/b.npy": npy_bytes(np.arange(3))})
    entry = DiskCache(tmp_path / "c").get(KEY)  # a new process would open the store again
    assert entry is not None
    assert entry.meta == {"x": [1, 2.5, "s"]}
    assert entry.read("a.bin") == b"\x00\x01"
    assert npy_load(entry.read("sub/b.npy")).tolist() == [0, 1, 2]
    assert store.get(cache_key("test", 1, {"a": 2})) is None
    assert list(store.tmp.iterdir()) == []


def test_arrays_round_trip_bit_exactly() -> None:
    odd = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, np.finfo(np.float32).max], dtype=np.float32)
    odd = np.concatenate([odd, np.frombuffer(np.uint32(0x7FC00001).tobytes(), np.float32)])  # a NaN payload
    for arr in (odd, np.random.default_rng(0).standard_normal((3, 4, 5)), np.arange(6, dtype=np.int64)[::2]):
        back = npy_load(npy_bytes(arr))
        assert back.dtype == arr.dtype and back.shape == arr.shape
        assert back.tobytes() == np.ascontiguousarray(arr).tobytes()
    with pytest.raises(ValueError):
        npy_load(npy_bytes(np.array([{"a": 1}], dtype=object)))  # object arrays are refused (no pickle)


def _corrupt(kind: str, path: Path) -> None:
    payload, entry = path / "p.bin", path / ENTRY_FILE
    if kind == "flipped payload byte":
        data = bytearray(payload.read_bytes())
        data[3] ^= 0x01
        payload.write_bytes(bytes(data))
    elif kind == "missing payload":
        payload.unlink()
    elif kind == "truncated payload":
        payload.write_bytes(payload.read_bytes()[:5])
    elif kind == "missing entry.json":
        entry.unlink()
    elif kind == "truncated entry.json":
        entry.write_bytes(entry.read_bytes()[:40])
    elif kind == "edited metadata":  # valid JSON, wrong checksum
        doc = json.loads(entry.read_text())
        doc["meta"]["n"] = 2
        entry.write_text(json.dumps(doc))
    elif kind == "entry of another key":
        doc = json.loads(entry.read_text())
        doc["key"] = "0" * 64
        entry.write_text(json.dumps(doc))
    elif kind == "binary garbage":
        entry.write_bytes(os.urandom(100))


@pytest.mark.parametrize(
    "kind",
    [
        "flipped payload byte",
        "missing payload",
        "truncated payload",
        "missing entry.json",
        "truncated entry.json",
        "edited metadata",
        "entry of another key",
        "binary garbage",
    ],
)
def test_corrupt_or_partial_entry_is_a_miss_and_removed(tmp_path: Path, kind: str) -> None:
    store = DiskCache(tmp_path)
    store.put(KEY, {"n": 1}, {"p.bin": bytes(range(64))})
    _corrupt(kind, _entry_dir(store, KEY))
    assert store.get(KEY) is None
    assert not _entry_dir(store, KEY).exists()
    store.put(KEY, {"n": 1}, {"p.bin": bytes(range(64))})  # and it can be stored again
    assert store.get(KEY) is not None


def test_key_is_canonical_and_changes_with_every_input() -> None:
    base = {"config": {"seed": 0, "tune": {"lr": 0.001}}, "models": ["a", "b"], "data": "d", "env": {"torch": "2"}}
    assert cache_key("tune", 1, base) == cache_key("tune", 1, json.loads(json.dumps(base, sort_keys=False)))
    assert cache_key("tune", 1, dict(reversed(base.items()))) == cache_key("tune", 1, base)
    changed = [
        cache_key("cka", 1, base),
        cache_key("tune", 2, base),
        cache_key("tune", 1, {**base, "config": {"seed": 1, "tune": {"lr": 0.001}}}),
        cache_key("tune", 1, {**base, "config": {"seed": 0, "tune": {"lr": 0.0011}}}),
        cache_key("tune", 1, {**base, "models": ["a", "c"]}),
        cache_key("tune", 1, {**base, "data": "e"}),
        cache_key("tune", 1, {**base, "env": {"torch": "3"}}),
    ]
    assert len({cache_key("tune", 1, base), *changed}) == len(changed) + 1
    with pytest.raises(TypeError):
        cache_key("tune", 1, {"path": Path("x")})  # nothing is silently stringified


def test_every_config_field_is_keyed_except_the_listed_ones() -> None:
    """Fields added to BuildConfig later are part of every stage's key unless someone excludes them on purpose."""
    fields = set(BuildConfig.model_fields)
    family = BuildConfig(models=["demo-large-cnn", "demo-vit", "demo-small-cnn"])
    for key in (cka.KEY, tune.KEY, export.KEY):
        # a pair's config has no family fields (its stages key as they did before families), a family's no pair ones
        assert set(key.config_part(BuildConfig())) == fields - set(key.not_inputs) - {"models", "pairs"}
        assert set(key.config_part(family)) == fields - set(key.not_inputs) - set(PAIR_FIELDS)
    a, b = BuildConfig(), BuildConfig(tune={"lr": BuildConfig().tune.lr * 2})
    assert tune.KEY.config_part(a) != tune.KEY.config_part(b)
    assert cka.KEY.config_part(a) == cka.KEY.config_part(b)  # tuning cannot change the CKA matrix


def test_fingerprints_see_one_ulp_and_one_pixel() -> None:
    model = create_model("demo-small-cnn")
    before = module_digest(model)
    with torch.no_grad():
        p = next(model.parameters())
        p.view(-1)[0] = torch.nextafter(p.view(-1)[0], torch.tensor(float("inf")))
    assert module_digest(model) != before
    images = np.zeros((4, 1, 2, 2), np.float32)
    other = images.copy()
    other[3, 0, 1, 1] = 1e-7
    assert array_digest(images) != array_digest(other)
    assert array_digest(images) != array_digest(images.astype(np.float64))


def test_default_location_env_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "restnet-compile"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "restnet-compile"


def test_tests_never_use_the_real_home_cache() -> None:
    assert Path(os.environ[CACHE_ENV]).name.startswith("restnet-test-cache-")
    assert default_cache_dir() == Path(os.environ[CACHE_ENV])


def test_failed_write_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskCache(tmp_path)
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        store.put(KEY, {}, {"p.bin": b"123"})
    monkeypatch.undo()
    assert store.get(KEY) is None
    assert list(store.tmp.iterdir()) == []


_WRITER = """
import sys
from pathlib import Path
from restnet_compile.pipeline.cache.disk import DiskCache, cache_key
store = DiskCache(Path(sys.argv[1]))
blob = bytes(range(256)) * 40000  # 10 MB: the kill lands in the middle of a write
for i in range(10**6):
    store.put(cache_key("kill", 1, {"i": i}), {"i": i}, {"a.bin": blob, "b.bin": blob})
    print(i, flush=True)
"""


def test_sigkill_while_writing_leaves_complete_entries_or_none(tmp_path: Path) -> None:
    root = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(3):  # three entries done, the fourth being written
        proc.stdout.readline()
    time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p for p in (root / "tmp").iterdir()]
    store = DiskCache(root)  # opening removes what the dead writer left in tmp/
    assert list(store.tmp.iterdir()) == [] and len(left) <= 1
    found = [store.get(cache_key("kill", 1, {"i": i})) for i in range(20)]
    done = [e for e in found if e is not None]
    assert len(done) >= 3 and all(e.read("a.bin") == bytes(range(256)) * 40000 for e in done)
    assert found[: len(done)] == done  # complete entries are exactly the first ones; nothing half-visible


def _cka(store, config, large, small, splits, compute):  # type: ignore[no-untyped-def]
    """The CKA stage's keying and storage around a stand-in computation."""
    inputs = cka.cka_inputs(config, large, small, splits, store)
    return store.run("cka", cka.KEY, inputs, compute, cka.save_cka, cka.load_cka)


def test_stage_cache_reuses_cka_and_restores_the_random_state(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ds = Dataset("t", rng.random((8, 1, 28, 28), dtype=np.float32), np.arange(8) % 10, 10)
    splits = Splits(ds, ds, ds, ds)
    large, small = create_model("demo-large-cnn"), create_model("demo-small-cnn")
    config, events = BuildConfig(), []

    class Log(Reporter):
        def cache(self, stage: str, reused: bool) -> None:
            events.append((stage, reused))

    def compute() -> np.ndarray:
        torch.rand(3)  # computing moves torch's random state; a hit must leave it where computing did
        return rng.standard_normal((6, 4))

    torch.manual_seed(1)
    first, reused = _cka(StageCache.open(tmp_path, Log()), config, large, small, splits, compute)
    after = torch.get_rng_state()
    assert not reused
    torch.manual_seed(1)
    second, reused = _cka(StageCache.open(tmp_path, Log()), config, large, small, splits, compute)
    assert reused and second.tobytes() == first.tobytes() and torch.equal(torch.get_rng_state(), after)
    assert events == [("cka", False), ("cka", True)]
    other = Splits(ds, Dataset("t", ds.images[::-1].copy(), ds.labels, 10), ds, ds)
    assert splits_digest(other) != splits_digest(splits)
    _, reused = _cka(StageCache.open(tmp_path, Log()), config, large, small, other, compute)
    assert not reused  # other data, other key
    _, reused = _cka(StageCache.open(False, Log()), config, large, small, splits, compute)
    assert not reused and events[-1] == ("cka", False)


def test_unusable_cache_dir_builds_without_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    lines: list[str] = []
    stages = StageCache.open(blocker / "cache", Reporter(lines.append))
    assert stages.disk is None and len(lines) == 1 and "building without the cache" in lines[0]


def test_stale_temp_dirs_of_dead_builds_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = tmp_path / f".phone-tflite-int8.tmp-{owner_tag().rsplit('.', 1)[0]}.{_dead_pid()}.abc123"
    dead.mkdir()
    (dead / "phone-tflite-int8").mkdir()
    live = make_owned_dir(tmp_path, ".phone-tflite-int8.tmp-")  # ours, still running
    parent_pid = tmp_path / f".mcu-tflm-int8.tmp-{owner_tag().rsplit('.', 1)[0]}.{os.getppid()}.xyz"
    parent_pid.mkdir()
    foreign = tmp_path / ".phone-tflite-int8.tmp-otherhost.1.abc"  # another machine's: never touched
    foreign.mkdir()
    user = tmp_path / "phone-tflite-int8.tmp-notes"
    user.mkdir()
    assert remove_stale(tmp_path, "", STAGING_PATTERN) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, parent_pid, foreign, user))


def test_staging_replaces_an_old_bundle_in_one_step_and_cleans_stale_dirs(tmp_path: Path) -> None:
    stale = tmp_path / f".b.tmp-{owner_tag().rsplit('.', 1)[0]}.{_dead_pid()}.q1"
    stale.mkdir()
    for content in ("old", "new"):
        with staging(tmp_path, "b") as stage:
            (stage / "f.txt").write_text(content)
            (stage.parent / "b.tar.gz").write_text(content)
    assert (tmp_path / "b" / "f.txt").read_text() == "new" and (tmp_path / "b.tar.gz").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.tar.gz"]


def test_build_summary_line_names_the_reused_stages() -> None:
    from restnet_compile.bundle.result import CacheEvent, CacheSummary
    from restnet_compile.cli.build import cache_line

    stages = (CacheEvent("cka", True), CacheEvent("tune L0-S0", False))
    assert cache_line(CacheSummary("/c", stages)) == "cache: reused cka (1 of 2 stages)"
    assert cache_line(CacheSummary("/c", stages[1:])) == "cache: 0 of 1 stages reused"
    assert cache_line(CacheSummary(None, ())) == "cache: off"


def test_the_source_digest_covers_the_whole_package() -> None:
    """A change anywhere in the package (here: the tuning loop, outside pipeline/) changes cache keys and the code
    identity a Ray worker is checked against."""
    import restnet_compile
    from restnet_compile.pipeline.cache import fingerprint

    assert fingerprint._PACKAGE == Path(restnet_compile.__file__).resolve().parent
    assert (fingerprint._PACKAGE / "stitching" / "tuning" / "loop.py").is_file()
