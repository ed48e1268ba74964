"""What a build hands back: where its bundle went and what the bundle holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from restnet_compile.bundle.manifest import Manifest


@dataclass(frozen=True)
class BuildResult:
    """Where the bundle went and what it holds.

    Attributes:
        bundle_dir: The published bundle directory.
        archive: Its reproducible ``.tar.gz``.
        manifest: The manifest as written (sealed) into the bundle.
        cache: ``{"dir": ..., "stages": [{"stage": "cka", "reused": True}, ...]}``; never part of the manifest.
    """

    bundle_dir: Path
    archive: Path
    manifest: Manifest
    cache: dict = field(default_factory=lambda: {"dir": None, "stages": []})
