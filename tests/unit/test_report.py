"""Reports say what was decided: model files with sizes, the validation accuracy the selection used and its noise."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from restnet_compile.report.html import render_html
from restnet_compile.report.markdown import COLUMNS, render_report, standard_error, variant_table
from restnet_compile.report.plots import plot_points, write_pareto_plot
from restnet_compile.report.write import write_reports
from tests.manifests import sample_manifest

FILES = {"variants.tflite": 372_496}


def test_standard_error_is_the_binomial_one() -> None:
    assert standard_error(0.976, 500) == pytest.approx(math.sqrt(0.976 * 0.024 / 500))
    assert round(100 * standard_error(0.976, 500), 1) == 0.7  # the "about ±0.7 points at 97 %"
    assert standard_error(1.0, 500) == 0.0 and standard_error(0.5, 0) == 0.0


def test_the_report_lists_the_model_files_with_sizes() -> None:
    md = render_report(sample_manifest(), FILES)
    assert "- model file(s): variants.tflite (372.5 KB); seed 0" in md
    assert "file(s): ;" not in md
    assert "model file(s): a.onnx (1.0 KiB), weights.bin (2.0 MiB)" in render_report(
        sample_manifest(), {"weights.bin": 2 << 20, "a.onnx": 1024}
    )


def test_the_table_shows_validation_accuracy_with_its_noise_beside_test() -> None:
    m = sample_manifest()
    lines = variant_table(m).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == list(COLUMNS) and head.index("val acc ± SE") < head.index("test acc")
    for v, line in zip(m.variants, lines[2:], strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        se = math.sqrt(v.val_accuracy_fp32 * (1 - v.val_accuracy_fp32) / m.data.val)
        assert cells[head.index("val acc ± SE")] == f"{100 * v.val_accuracy_fp32:.1f} ± {100 * se:.1f}%"
        assert cells[head.index("test acc")] == f"{100 * v.accuracy_fp32:.1f}%"
    md = render_report(m, FILES)
    assert f"n = {m.data.val}" in md and "`ships` is decided on `val acc`" in md


def test_the_html_page_has_the_same_content() -> None:
    m = sample_manifest()
    page = render_html(m, ["pareto.png"], FILES)
    assert "Model file(s): variants.tflite (372.5 KB)." in page
    assert "<th>val acc ± SE</th>" in page and "<th>test acc</th>" in page
    assert f"Selection on {m.data.val} validation images" in page


def test_the_plot_points_are_the_selection_s_accuracy_with_error_bars() -> None:
    m = sample_manifest()
    points = {q.id: q for q in plot_points(m)}
    assert set(points) == {v.id for v in m.variants}
    for v in m.variants:
        q = points[v.id]
        assert q.val_pct == 100 * v.val_accuracy_fp32 and q.test_pct == 100 * v.accuracy_fp32
        assert q.val_se_pct == 100 * standard_error(v.val_accuracy_fp32, m.data.val) > 0
        assert q.status == ("shipped" if v.selected else "dominated" if v.feasible else "infeasible")
    assert any(q.val_pct != q.test_pct for q in points.values()), "the sample must tell the two apart"


def test_write_reports_writes_every_file(tmp_path: Path) -> None:
    m = sample_manifest()
    paths = write_reports(tmp_path, m, FILES)
    assert sorted(p.name for p in paths) == ["cka.png", "pareto.png", "report.html", "report.md"]
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "variants.tflite (372.5 KB)" in (tmp_path / "report.md").read_text()
    again = tmp_path / "again.png"
    assert write_pareto_plot(m, again).read_bytes() == (tmp_path / "pareto.png").read_bytes(), "byte-stable"
