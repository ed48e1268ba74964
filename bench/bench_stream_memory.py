"""Peak memory of a 224 px build as the dataset grows: 400, 1,600 and 6,400 images (JSON).

Usage: ``python bench/bench_stream_memory.py [--sizes 400 1600 6400] [--max-memory 2GiB] [--before SRC] [--out
bench/results/stream_memory.json]``. torchvision resnet18 -> mobilenet_v3_small with seeded random weights (BatchNorm
statistics estimated on the data, ``tv_pair.random_weights``), on a synthetic folder of 224 x 224 JPEGs in four classes
(a coloured shape per class on noise, so the files decode like photos); 3 candidates, 1 tuning epoch, profile jetson,
target onnx-fp32, ``selection: feasible``, one torch thread. Every build is its own process with ``--no-cache``, all
sizes side by side; its peak resident memory is the ``ru_maxrss`` of a fresh parent that runs only that build. Wall time
depends on the machine's load (recorded); CPU time per image is the steadier figure. The folder of each size holds the
first images of the largest one. ``--before SRC`` also builds the smaller sizes with the package at ``SRC`` (a checkout
of the code before streaming) for comparison. Goal: peak RSS(6,400) / peak RSS(400) <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from benchlib.cli_builds import write_config
from benchlib.files import write_json
from tv_pair import NUM_CLASSES, random_weights

GOAL = 1.3
CLASSES = 4
_WRAPPER = (
    "import resource, subprocess, sys, json;"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(json.dumps({'code': p.returncode, 'rss_kib': u.ru_maxrss, 'cpu': u.ru_utime + u.ru_stime,"
    " 'stdout': p.stdout, 'stderr': p.stderr}))"
)


def synthetic_folder(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` 224 x 224 JPEGs in ``CLASSES`` class folders (round robin): a class-coloured disc on seeded noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    colours = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40)]
    files = []
    for k in range(n):
        label = k % CLASSES
        noise = rng.integers(0, 120, size=(224, 224, 3), dtype=np.uint8)
        img = Image.fromarray(noise)
        x, y = (int(v) for v in rng.integers(40, 184, size=2))
        r = int(rng.integers(20, 50))
        ImageDraw.Draw(img).ellipse((x - r, y - r, x + r, y + r), fill=colours[label])
        path = root / f"class{label}" / f"{k:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=85)
        files.append(path)
    return files


def subset_folder(root: Path, files: list[Path], n: int) -> Path:
    """A folder of links to the first ``n`` of ``files`` (same class folders)."""
    for f in files[:n]:
        link = root / f.parent.name / f.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f)
    return root


def bn_sample(files: list[Path], out: Path) -> Path:
    """The first 64 images as a uint8 ``.npz`` (``random_weights`` estimates BatchNorm statistics on it)."""
    from PIL import Image

    images = np.stack([np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1) for f in files[:64]])
    labels = np.arange(64) % CLASSES
    np.savez(out, images=images, labels=labels)
    return out


def measured_build(args: list[str], cwd: Path, source: Path | None, timeout: float) -> dict:
    """One build in a fresh parent: exit code, wall / CPU seconds, peak RSS and the feature store it chose."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    cmd = [sys.executable, "-m", "restnet_compile", "build", *args, "--no-cache", "--json"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"code": None, "timed_out": True, "seconds": round(time.perf_counter() - start, 1)}
    seconds = time.perf_counter() - start
    got = json.loads(proc.stdout)
    store = re.search(r"feature store: ([a-z0-9-]+)", got["stderr"])
    return {
        "code": got["code"],
        "seconds": round(seconds, 1),
        "cpu_seconds": round(got["cpu"], 1),
        "peak_rss_bytes": got["rss_kib"] * 1024,
        "feature_store": store.group(1) if store else None,
        "error": got["stderr"].strip().splitlines()[-1] if got["code"] else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[400, 1600, 6400])
    ap.add_argument("--max-memory", default="2GiB", help="the builds' --max-memory")
    ap.add_argument("--before", type=Path, help="package source of the code before streaming (builds the sizes < 6400)")
    ap.add_argument("--before-sizes", type=int, nargs="+", default=[400])
    ap.add_argument("--timeout", type=float, default=5400, help="seconds after which a build is stopped and reported")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stream_memory.json")
    args = ap.parse_args()
    settings = {
        "plan": {"max_candidates": 3},
        "tune": {"epochs": 1},
        "selection": "feasible",
        "threads": 1,
        "input_shape": [3, 224, 224],
        "num_classes": NUM_CLASSES,
    }
    runs: dict[str, dict] = {}
    before: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        work = Path(tmp)
        files = synthetic_folder(work / "all", max(args.sizes))
        sample = bn_sample(files, work / "bn.npz")
        large, small = (
            random_weights("resnet18", work, data=sample),
            random_weights("mobilenet_v3_small", work, data=sample),
        )
        config = str(write_config(work / "build.yaml", settings))
        common = ["--config", config, "--profile", "jetson", "--target", "onnx-fp32"]
        common += ["--large", "resnet18", "--small", "mobilenet_v3_small"]
        common += ["--large-weights", str(large), "--small-weights", str(small)]
        jobs = {}
        for n in sorted(args.sizes):
            data = subset_folder(work / f"n{n}", files, n)
            jobs[("after", n)] = [*common, "--data", str(data), "--out", f"out{n}", "--max-memory", args.max_memory]
            if args.before is not None and n in args.before_sizes:
                jobs[("before", n)] = [*common, "--data", str(data), "--out", f"before{n}"]
        with ThreadPoolExecutor(len(jobs)) as pool:  # side by side: each build its own process
            futures = {
                key: pool.submit(measured_build, flags, work, args.before if key[0] == "before" else None, args.timeout)
                for key, flags in jobs.items()
            }
            for (kind, n), fut in futures.items():
                (runs if kind == "after" else before)[str(n)] = fut.result()
                print(kind, n, fut.result(), flush=True)
    for r in [*runs.values(), *before.values()]:
        n = next(int(k) for k, v in [*runs.items(), *before.items()] if v is r)
        if not r.get("timed_out"):
            r["seconds_per_image"] = round(r["seconds"] / n, 4)
            r["cpu_seconds_per_image"] = round(r["cpu_seconds"] / n, 4)
    done = [n for n in sorted(args.sizes) if runs[str(n)].get("code") == 0]
    lo, hi = str(done[0]), str(done[-1])
    ratio = round(runs[hi]["peak_rss_bytes"] / runs[lo]["peak_rss_bytes"], 3)
    result = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pair": "resnet18 -> mobilenet_v3_small (torchvision, random weights, BatchNorm estimated on the data)",
        "data": f"synthetic folder of 224 x 224 JPEGs, {CLASSES} classes",
        "settings": settings,
        "profile": "jetson",
        "target": "onnx-fp32",
        "max_memory": args.max_memory,
        "runs": runs,
        "before": before,
        "rss_ratio": ratio,
        "rss_ratio_sizes": [int(lo), int(hi)],
        "goal": GOAL,
        "load_average": os.getloadavg(),
        "side_by_side": True,
        "meets_goal": ratio <= GOAL and all(r.get("code") == 0 for r in runs.values()),
    }
    write_json(args.out, result)
    print(f"peak RSS {hi} / {lo} = {ratio} (goal <= {GOAL})")


if __name__ == "__main__":
    main()
