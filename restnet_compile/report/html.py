"""``report.html``: the Markdown report's content with the plots inline, for people opening a bundle."""

from __future__ import annotations

import html
from collections.abc import Mapping

from restnet_compile.bundle.manifest import Manifest
from restnet_compile.report.markdown import COLUMNS, accuracy_note, files_line, variant_rows


def render_html(manifest: Manifest, images: list[str], model_files: Mapping[str, int]) -> str:
    """A standalone page: summary, variant table, and the given PNGs (names relative to the bundle).

    ``model_files`` maps the bundle's model files to their sizes in bytes.
    """
    p, t = manifest.profile, manifest.target
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in variant_rows(manifest)
    )
    notes = "".join(f"<p>Data: {html.escape(note)}.</p>\n" for note in manifest.data.notes or ())
    figures = "\n".join(f'<p><img src="{html.escape(name)}" alt="{html.escape(name)}"></p>' for name in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>restnet-compile bundle {html.escape(p.name)}-{html.escape(t.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}} img{{max-width:100%}}</style></head>
<body>
<h1>Profile <code>{html.escape(p.name)}</code>, target <code>{html.escape(t.name)}</code></h1>
<p>{html.escape(p.soc)} ({html.escape(p.runtime)}): latency p{p.latency_percentile} &le;
{p.latency_budget_ms:g} ms. Selection on {manifest.data.val} validation images, test accuracy on
{manifest.data.test} test images; seed {manifest.seed}.</p>
{notes}<p>Model file(s): {html.escape(files_line(model_files))}.</p>
<table><tr>{head}</tr>
{rows}
</table>
<p>{html.escape(accuracy_note(manifest))}</p>
{figures}
</body></html>
"""
