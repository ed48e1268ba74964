"""Write every report file of a bundle: ``report.md``, ``report.html``, ``pareto.png`` and ``cka.png``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from restnet_compile.bundle.manifest import Manifest
from restnet_compile.report.html import render_html
from restnet_compile.report.markdown import render_report
from restnet_compile.report.plots import write_pareto_plot
from restnet_compile.similarity.heatmap import Panel

IMAGES = ("pareto.png", "cka.png")


def _cka_cells(manifest: Manifest) -> list[tuple[int, int]]:
    swap = manifest.stitching.rule.order == "small-large"
    cells = []
    for v in manifest.variants:
        s = v.stitch
        if v.kind == "stitched" and s.front_block is not None and s.back_block is not None:
            cells.append((s.back_block, s.front_block) if swap else (s.front_block, s.back_block))
    return cells


def _pair_panels(manifest: Manifest) -> list[Panel]:
    """One heatmap panel per pair of a family's anchors, its candidates outlined."""
    pairs = manifest.stitching.pairs or ()
    tags = {a.id: a.tag for a in manifest.models.anchors or ()}
    names = {a.id: a.model.name for a in manifest.models.anchors or ()}
    swap = manifest.stitching.rule.order == "small-large"
    panels = []
    for p in pairs:
        big, little = tags[p.big], tags[p.little]
        cka = np.array(p.cka)
        cells = []
        for v in manifest.variants:
            s = v.stitch
            if v.kind != "stitched" or s.front_block is None or s.back_block is None:
                continue
            front, back = (little, big) if swap else (big, little)
            if v.id.startswith(front) and v.id.split("-")[1].startswith(back):
                cells.append((s.back_block, s.front_block) if swap else (s.front_block, s.back_block))
        panels.append(
            Panel(
                cka,
                [f"{big}{i}" for i in range(cka.shape[0])],
                [f"{little}{j}" for j in range(cka.shape[1])],
                cells,
                f"{p.name}: {names[p.big]} (rows) vs {names[p.little]} (columns)",
                (f"{p.little} block", f"{p.big} block"),
            )
        )
    return panels


def write_reports(out_dir: Path, manifest: Manifest, model_files: Mapping[str, int]) -> list[Path]:
    """Write the reports for ``manifest`` into ``out_dir``; returns the paths written.

    ``model_files`` maps the bundle's model files to their sizes in bytes (the reports list them).
    """
    from restnet_compile.similarity.heatmap import write_cka_heatmap, write_cka_heatmaps

    cka = np.array(manifest.stitching.cka)
    m = manifest.models
    if manifest.stitching.pairs:
        paths = [
            write_pareto_plot(manifest, out_dir / "pareto.png"),
            write_cka_heatmaps(_pair_panels(manifest), out_dir / "cka.png"),
        ]
    else:
        paths = [
            write_pareto_plot(manifest, out_dir / "pareto.png"),
            write_cka_heatmap(
                cka,
                out_dir / "cka.png",
                [f"L{i}" for i in range(cka.shape[0])],
                [f"S{j}" for j in range(cka.shape[1])],
                _cka_cells(manifest),
                f"linear CKA: {m.large.name} (rows) vs {m.small.name} (columns)",
            ),
        ]
    figures = "\n![validation accuracy vs latency and FLOPs](pareto.png)\n\n![CKA heatmap](cka.png)\n"
    md = render_report(manifest, model_files) + figures
    (out_dir / "report.md").write_text(md)
    (out_dir / "report.html").write_text(render_html(manifest, list(IMAGES), model_files))
    return [*paths, out_dir / "report.md", out_dir / "report.html"]
