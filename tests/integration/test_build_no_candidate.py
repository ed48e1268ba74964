"""A build whose pair yields no stitch candidate ships the two models and says why, one line per rejected pair."""

from __future__ import annotations

from pathlib import Path

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from tests.unit.fixture_models import DIGIT_STATS, MNIST, SPECS, trained_path


def test_no_candidate_is_explained_in_the_output_manifest_and_report(tmp_path: Path) -> None:
    """timm's test_resnet halves its resolution in its stem and again soon after; as the prefix donor it never
    gives a grid as fine as the residual net's blocks at the same depth, so no adapter can join any pair."""
    config = BuildConfig.model_validate(
        {
            "large": SPECS["timm"],
            "small": SPECS["residual"],
            "large_weights": str(trained_path("timm")),
            "small_weights": str(trained_path("residual")),
            "large_preprocess": DIGIT_STATS,
            "small_preprocess": DIGIT_STATS,
            "input_shape": list(MNIST),
            "num_classes": 10,
            "dataset": "mnist5k",
            "selection": "feasible",
            "target": "onnx-fp32",
        }
    )
    lines: list[str] = []
    result = api.build(config, tmp_path / "out", progress=lines.append, cache=False)
    rejected = result.manifest.stitching.rejected
    assert rejected, "the manifest must say why there is no candidate"
    assert [v.id for v in result.manifest.variants] == ["large", "small"]
    for line in rejected:
        assert line.split(":")[0].startswith("L") and "-S" in line.split(":")[0], line
        assert "finer than the prefix's" in line, line  # the shape mismatch, in words
    assert "L0-S0: adapter conv1x1 cannot resize map 16x14x14 to map 16x28x28" in rejected[0]
    said = [line.strip() for line in lines]
    assert any("no stitch candidate" in line for line in said), said
    assert all(line in said for line in rejected), said
    report = (result.bundle_dir / "report.md").read_text()
    assert "## No stitch candidate" in report
    assert all(f"- {line}" in report for line in rejected)
