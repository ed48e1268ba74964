"""A real sealed manifest (the demo phone bundle's) for tests that need one without building a bundle."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from restnet_compile.bundle.manifest import MANIFEST, Manifest, read_manifest, write_manifest

#: ``manifest.json`` of ``restnet-compile build --profile phone`` (demo pair, mnist5k, seed 0) in format 1, as
#: written: newer code must keep reading it.
SAMPLE = Path(__file__).parent / "data" / "phone-tflite-int8.manifest.json"


def sample_manifest() -> Manifest:
    """The sample manifest, read through the one reader (seal and fields checked)."""
    return read_manifest(SAMPLE.read_bytes(), str(SAMPLE))


def bundle_with_terms(root: Path, terms: Mapping[str, Sequence[tuple[int, ...]]]) -> Path:
    """A bundle directory whose sealed manifest lists one exported variant per entry of ``terms`` (no model files)."""
    template = sample_manifest()
    stitched = next(v for v in template.variants if v.kind == "stitched")
    variants = tuple(
        dataclasses.replace(stitched, id=k, signature=k, latency_terms=tuple(map(tuple, t))) for k, t in terms.items()
    )
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root / MANIFEST, dataclasses.replace(template, variants=variants, files={}))
    return root
