"""Photo digits: does ``restnet-compile run --input photo`` read a phone-photo-like picture of a written digit (JSON)?

Usage: ``python bench/bench_photo_digits.py [--bundle dist/phone-tflite-int8] [--per-digit 2] [--seed 0]
[--out bench/results/photo_digits.json]``. Draws ``per-digit`` pictures of every digit (``lib/photo_digits.py``:
300 x 200 RGB, dark strokes on unevenly lit paper with sensor noise, pen strokes and font glyphs in turn, JPEG and
PNG in turn, rotated up to 12 degrees), runs ``restnet-compile run BUNDLE --input PICTURE --json`` on each (one
process per picture: the bundle's recorded image policy prepares it) and, for comparison, the same variant on the
picture resized plainly to 28 x 28 grey (what a bundle without the policy would be given).
Goal: every picture read right by ``run``; the plain resize is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from benchlib.files import write_json
from benchlib.photo_digits import write_set

from restnet_compile._util.images import DEFAULT_POLICY, read_image
from restnet_compile.runtime import Bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("dist/phone-tflite-int8"))
    ap.add_argument("--per-digit", type=int, default=2, help="pictures of each digit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "photo_digits.json")
    args = ap.parse_args()
    bundle = Bundle.open(args.bundle)
    shape = tuple(bundle.manifest.input.shape)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-photos-") as tmp:
        for path, digit in write_set(Path(tmp), args.per_digit, args.seed):
            cmd = [sys.executable, "-m", "restnet_compile", "run", str(args.bundle), "--input", str(path), "--json"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
            got = json.loads(proc.stdout)
            plain = read_image(path, shape, DEFAULT_POLICY)  # type: ignore[arg-type]
            plain_label = int(np.argmax(bundle.run(plain[None], got["variant"])[0]))
            k = int(path.stem.split("_")[1])
            rows.append(
                {
                    "file": path.name,
                    "digit": digit,
                    "drawn_as": "pen strokes" if k % 2 == 0 else "font glyph",
                    "variant": got["variant"],
                    "read": got["label"],
                    "plain_resize_read": plain_label,
                }
            )
    correct = sum(r["read"] == r["digit"] for r in rows)
    plain_correct = sum(r["plain_resize_read"] == r["digit"] for r in rows)
    image = bundle.manifest.input.image
    write_json(
        args.out,
        {
            "bundle": args.bundle.name,
            "config_hash": bundle.manifest.config_hash,
            "build": {k: bundle.manifest.config[k] for k in ("dataset", "selection", "plan", "tune")},
            "image_policy": {"invert": image.invert, "fit_object": image.fit_object} if image else None,
            "settings": {"per_digit": args.per_digit, "seed": args.seed},
            "images": len(rows),
            "correct": correct,
            "accuracy": round(correct / len(rows), 4),
            "plain_resize_correct": plain_correct,
            "plain_resize_accuracy": round(plain_correct / len(rows), 4),
            "rows": rows,
            "meets_goal": correct == len(rows),
        },
    )
    print(f"{correct}/{len(rows)} read right by run ({plain_correct}/{len(rows)} with a plain resize)")


if __name__ == "__main__":
    main()
