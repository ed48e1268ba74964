"""Files the benchmarks write."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    """Write JSON with sorted keys and a trailing newline (byte-stable)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
