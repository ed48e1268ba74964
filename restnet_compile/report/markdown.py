"""``report.md``: the variant table, the CKA matrix and the selection rule of one build."""

from __future__ import annotations

from restnet_compile._util.units import format_size
from restnet_compile.bundle.manifest import Manifest

COLUMNS = (
    "variant",
    "stitch",
    "MFLOPs",
    "params",
    "fp32 acc",
    "deployed acc",
    "est. latency",
    "est. RAM",
    "est. size",
    "ships",
)


def variant_rows(manifest: Manifest) -> list[tuple[str, ...]]:
    """One row of text per variant, in manifest order."""
    rows = []
    deployed = manifest.target.dtype
    for v in manifest.variants:
        acc = v.accuracy_deployed
        rows.append(
            (
                v.id,
                v.stitch.description,
                f"{v.flops / 1e6:.2f}",
                f"{v.params:,}",
                f"{v.accuracy_fp32:.1%}",
                f"{acc:.1%} ({deployed})" if acc is not None else "-",
                f"{v.latency_ms:.2f} ms",
                format_size(v.ram_bytes),
                format_size(v.model_bytes),
                "yes" if v.selected else "no: " + "; ".join(v.reasons),
            )
        )
    return rows


def variant_table(manifest: Manifest) -> str:
    """The variant table as Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in variant_rows(manifest)]
    return "\n".join(lines)


def _cka_table(manifest: Manifest) -> str:
    cka = manifest.stitching.cka
    head = "| large \\ small | " + " | ".join(f"S{j}" for j in range(len(cka[0]))) + " |"
    rows = [f"| L{i} | " + " | ".join(f"{x:.3f}" for x in row) + " |" for i, row in enumerate(cka)]
    return "\n".join([head, "|" + "---|" * (len(cka[0]) + 1), *rows])


def render_report(manifest: Manifest) -> str:
    """The whole ``report.md`` text."""
    p, t, m = manifest.profile, manifest.target, manifest.models
    rule = manifest.stitching.rule
    return "\n".join(
        [
            f"# restnet-compile bundle: profile `{p.name}`, target `{t.name}`",
            "",
            f"- device: {p.soc} ({p.runtime}); limits: latency p{p.latency_percentile} <= "
            f"{p.latency_budget_ms:g} ms, RAM <= {format_size(p.ram_bytes)}, "
            f"flash <= {format_size(p.flash_bytes)}",
            f"- large model: `{m.large.name}` ({m.large.test_accuracy:.1%} test accuracy); "
            f"small model: `{m.small.name}` ({m.small.test_accuracy:.1%})",
            f"- data: `{manifest.data.dataset}`, accuracies on the test split ({manifest.data.test} images)",
            f"- bundle file(s): {', '.join(sorted(manifest.files))}; seed {manifest.seed}",
            "",
            "## Variants",
            "",
            variant_table(manifest),
            "",
            "Latency and RAM are the profile's model estimates; `est. size` is the variant's model alone "
            "(the bundle stores shared blocks once). `ships` uses validation accuracy; the table shows test accuracy.",
            "",
            *([f"Selection: {manifest.selection.rule}.", ""] if manifest.selection is not None else []),
            "## CKA between block outputs (calibration split)",
            "",
            _cka_table(manifest),
            "",
            f"Candidate rule `{rule.rule}`: depth band {rule.depth_band}, at least {rule.min_suffix_blocks} "
            f"suffix block(s), at most {rule.max_candidates} candidates.",
            "",
        ]
    )
