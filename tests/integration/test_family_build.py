"""A tiny family of three demo CNNs built end to end into one tflm-int8 bundle: anchors ordered by FLOPs, stitches
along neighbours, every block stored once across the three models, the bundle verifies and its runtime switches
across the whole span (a patch that adds a stitch to a family bundle: tests/slow/test_family_builds.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from restnet_compile import api
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.config.build import BuildConfig

# the anchors out of FLOPs order on purpose; one candidate per pair, one tuning epoch, every feasible variant ships
TINY = {
    "models": ["demo-small-cnn", "demo-large-cnn", "demo-mid-cnn"],
    "dataset": "mnist5k",
    "splits": {"calib": 200, "val": 200, "test": 200, "train": 1000},
    "plan": {"max_candidates": 1},
    "tune": {"epochs": 1},
    "selection": "feasible",
    "profile": "phone",
    "target": "tflm-int8",
}


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[api.BuildResult, Path]:
    cache = tmp_path_factory.mktemp("family-cache")
    return api.build(BuildConfig.model_validate(TINY), tmp_path_factory.mktemp("family"), cache=cache), cache


def test_anchors_are_ordered_by_flops_and_stitched_along_neighbours(family: tuple[api.BuildResult, Path]) -> None:
    m: Manifest = family[0].manifest
    anchors = m.models.anchors or ()
    assert [(a.id, a.tag, a.model.name) for a in anchors] == [
        ("large", "L", "demo-large-cnn"),
        ("middle", "M", "demo-mid-cnn"),
        ("small", "S", "demo-small-cnn"),
    ]
    assert anchors[0].flops > anchors[1].flops > anchors[2].flops
    assert (m.models.large.name, m.models.small.name) == ("demo-large-cnn", "demo-small-cnn")
    assert [p.name for p in m.stitching.pairs or ()] == ["L-M", "M-S"] and m.stitching.cka == ()
    assert [x["name"] for x in m.config["models"]] == ["demo-large-cnn", "demo-mid-cnn", "demo-small-cnn"]
    assert "large" not in m.config
    stitched = [v for v in m.variants if v.kind == "stitched"]
    assert sorted(v.id[0] + v.id.split("-")[1][0] for v in stitched) == ["LM", "MS"]
    assert {(v.stitch.front, v.stitch.back) for v in stitched} == {("large", "middle"), ("middle", "small")}


def test_every_block_is_stored_once_across_the_family(family: tuple[api.BuildResult, Path]) -> None:
    m = family[0].manifest
    segments = m.segments or ()
    ids = [s.id for s in segments]
    assert len(ids) == len(set(ids))
    for donor in ("large", "middle", "small"):
        ranges = sorted((s.start, s.stop) for s in segments if s.model == donor)
        assert ranges, f"no segment of {donor}"
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges)), f"{donor} blocks stored twice"
    chains = {v.id: v.chain for v in m.shipped()}
    assert set(chains) >= {"large", "middle", "small"}
    middle_segments = set(chains["middle"] or ())
    for vid, chain in chains.items():  # every stitch runs the middle model's own segments where it runs its blocks
        assert chain is not None
        if vid.startswith("M") or vid.endswith(tuple(f"M{j}" for j in range(9))):
            assert {s for s in chain if s.startswith("M")} <= middle_segments


def test_family_bundle_verifies_and_switches_across_the_span(family: tuple[api.BuildResult, Path]) -> None:
    result = family[0]
    checks = api.verify(result.bundle_dir)
    assert checks and all(c.ok for c in checks)
    bundle = api.open_bundle(result.bundle_dir)
    fastest = min(bundle.variants, key=lambda v: v.latency_ms)
    best = bundle.select()
    assert best.id != fastest.id  # the span runs from the cheapest variant to the most accurate
    assert bundle.select(latency_ms=fastest.latency_ms).id == fastest.id
    report = (result.bundle_dir / "report.md").read_text()
    assert "Pair `L-M`" in report and "Pair `M-S`" in report
    assert "## Stitches against the anchors' line" in report and "small-middle" in report
