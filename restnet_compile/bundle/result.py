"""What a build hands back: where its bundle went and what the bundle holds (one per profile of a fleet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from restnet_compile.bundle.manifest import Manifest


@dataclass(frozen=True)
class CacheEvent:
    """One cached stage of a build: ``reused`` from the cache, or computed and stored."""

    stage: str
    reused: bool


@dataclass(frozen=True)
class CacheSummary:
    """How a build used its stage cache.

    Attributes:
        dir: The cache directory; None when caching was off.
        stages: Every cached stage in the order the build met it, reused or computed.
    """

    dir: str | None
    stages: tuple[CacheEvent, ...]

    @property
    def reused(self) -> list[str]:
        """The stages that came from the cache."""
        return [e.stage for e in self.stages if e.reused]


@dataclass(frozen=True)
class BuildResult:
    """Where the bundle went and what it holds.

    Attributes:
        bundle_dir: The published bundle directory.
        archive: Its reproducible ``.tar.gz``.
        manifest: The manifest as written (sealed) into the bundle.
        cache: Which cached stages were reused or computed; never part of the manifest.
    """

    bundle_dir: Path
    archive: Path
    manifest: Manifest
    cache: CacheSummary = field(default_factory=lambda: CacheSummary(None, ()))


@dataclass(frozen=True)
class ProfileFailure:
    """A profile of a fleet build that published nothing.

    Attributes:
        profile: The profile's name.
        exit_code: The exit code a build of that profile alone would have ended with (3 infeasible, 4 parity...).
        message: The one-line reason.
    """

    profile: str
    exit_code: int
    message: str


@dataclass(frozen=True)
class FleetResult:
    """A build for several profiles: every bundle that was published and every profile that failed.

    Attributes:
        bundles: One result per published profile, in the order the profiles were given.
        failures: The profiles that published nothing; the others were published all the same.
    """

    bundles: list[BuildResult]
    failures: list[ProfileFailure]

    @property
    def exit_code(self) -> int:
        """0 when every profile was published, else the highest exit code among the failures."""
        return max((f.exit_code for f in self.failures), default=0)
