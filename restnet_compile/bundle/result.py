"""What a build hands back: where its bundle went and what the bundle holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BuildResult:
    """Where the bundle went and what it holds.

    Attributes:
        bundle_dir: The published bundle directory.
        archive: Its reproducible ``.tar.gz``.
        manifest: The manifest as written.
        cache: ``{"dir": ..., "stages": [{"stage": "cka", "reused": True}, ...]}``; never part of the manifest.
    """

    bundle_dir: Path
    archive: Path
    manifest: dict
    cache: dict = field(default_factory=lambda: {"dir": None, "stages": []})
