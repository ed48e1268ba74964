"""Crash safety: SIGKILL a real build at 12 points across its stages, resume, and compare the bytes.

Each kill runs ``restnet-compile build --events`` in a subprocess and reads its JSON-lines progress on stderr; when
the chosen event appears, the build's whole process group gets SIGKILL (no test hooks in the code: the events are
the ordinary ``--events`` progress). Every run shares one cache directory and one ``--out``. After each kill:
``--out`` holds no bundle and no archive (or, once one was published, that complete bundle untouched); every cache
event of the run says ``reused`` exactly for the stages that earlier runs had finished. The last run completes and
its bundle and archive are byte-identical to the uninterrupted build with a fresh cache (fixture ``phone_bundle``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile._util.tempdirs import stale_dirs
from restnet_compile.bundle.writer import STAGING_PATTERN
from restnet_compile.runtime import Bundle
from tests.integration.conftest import FAST

ROOT = Path(__file__).resolve().parents[2]
NAME = "phone-tflite-int8"
ALL = ["cka", "tune L0-S0", "tune L1-S1", "export"]


@dataclass(frozen=True)
class Kill:
    """Kill at the ``hit``-th event matching ``event`` (a subset of its JSON), or once ``then_file`` (a glob under
    ``--out``) exists after it: files the exporter writes into the build's staging directory mark points inside the
    one long export step, where no event is sent."""

    name: str
    event: dict
    hit: int = 1
    then_file: str | None = None


KILLS = [
    Kill("models loaded, before CKA", {"event": "log", "message": "CKA: 6 x 4 blocks on 500 calibration images"}),
    Kill("during CKA", {"event": "advance", "stage": "CKA"}),
    Kill("CKA stored", {"event": "cache", "stage": "cka"}),
    Kill("tuning the first candidate", {"event": "stage", "stage": "tuning adapters"}),
    Kill("first candidate stored", {"event": "cache", "stage": "tune L0-S0"}),
    Kill("second candidate stored", {"event": "cache", "stage": "tune L1-S1"}),
    Kill("export starts", {"event": "stage", "stage": "export"}),
    Kill(
        "onnx2tf converting the second variant",
        {"event": "stage", "stage": "export"},
        then_file=f".{NAME}.tmp-*/work/small.onnx2tf.onnx",
    ),
    Kill("export stored", {"event": "cache", "stage": "export"}),
    Kill("during parity", {"event": "advance", "stage": "parity"}),
    Kill("just before publishing", {"event": "advance", "stage": "parity"}, hit=4),
]


def _cli(out: Path, cache: Path, cfg: Path, *extra: str) -> subprocess.Popen:
    args = ["build", "--profile", "phone", "--config", str(cfg), "--out", str(out), "--cache-dir", str(cache)]
    return subprocess.Popen(
        [sys.executable, "-m", "restnet_compile", *args, "--events", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes any converter child processes too
    )


def _events(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a library's own warning on stderr
        if isinstance(event, dict) and "event" in event:
            out.append(event)
    return out


def _wait_for(out: Path, pattern: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not any(out.glob(pattern)):
        assert proc.poll() is None and time.monotonic() < end, f"{pattern} never appeared"
        time.sleep(0.05)


def _run_until(proc: subprocess.Popen, kill: Kill, out: Path) -> list[dict]:
    """Read events until ``kill`` fires, SIGKILL the process group, return every event it managed to write."""
    assert proc.stderr is not None
    lines, seen = [], 0
    for line in proc.stderr:
        lines.append(line)
        event = _events([line])
        if event and event[0].items() >= kill.event.items():
            seen += 1
            if seen == kill.hit:
                if kill.then_file:
                    _wait_for(out, kill.then_file, proc)
                os.killpg(proc.pid, signal.SIGKILL)
                break
    lines += proc.stderr.readlines()  # what it wrote before dying
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{kill.name}: the build ended by itself:\n{''.join(lines)[-3000:]}"
    return _events(lines)


def _cache_events(events: list[dict]) -> list[tuple[str, bool]]:
    return [(e["stage"], e["reused"]) for e in events if e["event"] == "cache"]


def _no_partial_bundle(out: Path, published: bytes | None) -> None:
    if not out.exists():  # killed before publishing began
        assert published is None
        return
    bundle, archive = out / NAME, out / f"{NAME}.tar.gz"
    if published is None:
        assert not bundle.exists() and not archive.exists(), sorted(p.name for p in out.iterdir())
    else:  # the complete bundle of an earlier run is still there, intact
        Bundle.open(bundle)
        assert archive.read_bytes() == published
    assert sorted(p.name for p in out.iterdir() if p.name not in (NAME, f"{NAME}.tar.gz")) == sorted(
        p.name for p in stale_dirs(out, "", STAGING_PATTERN)
    ), "anything else in --out must be a dead build's staging directory, removed by the next build"


@pytest.mark.slow  # twelve killed builds: about three minutes
def test_sigkill_at_12_points_then_resume_is_byte_identical(phone_bundle: api.BuildResult, tmp_path: Path) -> None:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(json.dumps(FAST))  # JSON is YAML
    out, cache = tmp_path / "out", tmp_path / "cache"
    done: set[str] = set()  # stages finished (stored in the cache) by the killed runs so far
    start, times = time.monotonic(), []
    for kill in KILLS:
        t = time.monotonic()
        cached = _cache_events(_run_until(_cli(out, cache, cfg), kill, out))
        times.append(f"{kill.name}: {time.monotonic() - t:.0f} s")
        for stage, reused in cached:
            assert reused == (stage in done), f"{kill.name}: {stage} reused={reused}, finished before: {done}"
        done |= {stage for stage, _ in cached}
        _no_partial_bundle(out, None)
    assert done == set(ALL)

    final = _cli(out, cache, cfg, "--json")
    stdout, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr[-3000:]
    assert _cache_events(_events(stderr.splitlines())) == [(s, True) for s in ALL]
    summary = json.loads(stdout)
    assert summary["cache"] == {"dir": str(cache), "stages": [{"stage": s, "reused": True} for s in ALL]}
    assert sorted(p.name for p in out.iterdir()) == [NAME, f"{NAME}.tar.gz"]  # stale staging directories gone
    ref = phone_bundle.bundle_dir
    assert sorted(p.name for p in (out / NAME).iterdir()) == sorted(p.name for p in ref.iterdir())
    for f in sorted(ref.iterdir()):
        assert (out / NAME / f.name).read_bytes() == f.read_bytes(), f.name
    published = (out / f"{NAME}.tar.gz").read_bytes()
    assert published == phone_bundle.archive.read_bytes()

    # 12th: killed while replacing an existing bundle; the old one stays complete and untouched
    rebuild = Kill("rebuild over a published bundle", {"event": "advance", "stage": "parity"})
    _run_until(_cli(out, cache, cfg), rebuild, out)
    _no_partial_bundle(out, published)
    for f in sorted(ref.iterdir()):
        assert (out / NAME / f.name).read_bytes() == f.read_bytes(), f.name
    print(f"\n12 kills + 1 resumed build: {time.monotonic() - start:.0f} s ({'; '.join(times)})")
