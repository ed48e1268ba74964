"""``report.md``: the variant table, the CKA matrix and the selection rule of one build.

The table shows the validation accuracy the selection decided on, with its noise (one binomial standard error),
beside the test accuracy, which is reported only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from restnet_compile._util.units import format_size
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.report.anchors_line import line_section

COLUMNS = (
    "variant",
    "stitch",
    "MFLOPs",
    "params",
    "val acc ± SE",
    "test acc",
    "deployed acc",
    "est. latency",
    "est. RAM",
    "est. size",
    "ships",
)


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` images: ``sqrt(p (1 - p) / n)``."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n > 0 else 0.0


def variant_rows(manifest: Manifest) -> list[tuple[str, ...]]:
    """One row of text per variant, in manifest order."""
    rows: list[tuple[str, ...]] = []
    deployed = manifest.target.dtype
    n_val = manifest.data.val
    for v in manifest.variants:
        acc = v.accuracy_deployed
        se = standard_error(v.val_accuracy_fp32, n_val)
        rows.append(
            (
                v.id,
                v.stitch.description,
                f"{v.flops / 1e6:.2f}",
                f"{v.params:,}",
                f"{100 * v.val_accuracy_fp32:.1f} ± {100 * se:.1f}%",
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


def _cka_table(
    cka: tuple[tuple[float, ...], ...], big: str = "large", little: str = "small", tags: tuple[str, str] = ("L", "S")
) -> str:
    head = f"| {big} \\ {little} | " + " | ".join(f"{tags[1]}{j}" for j in range(len(cka[0]))) + " |"
    rows = [f"| {tags[0]}{i} | " + " | ".join(f"{x:.3f}" for x in row) + " |" for i, row in enumerate(cka)]
    return "\n".join([head, "|" + "---|" * (len(cka[0]) + 1), *rows])


def _cka_section(manifest: Manifest) -> list[str]:
    """The CKA matrix of the pair, or one per pair of a family's anchors."""
    if not manifest.stitching.pairs:
        return [_cka_table(manifest.stitching.cka)]
    tags = {a.id: a.tag for a in manifest.models.anchors or ()}
    out: list[str] = []
    for p in manifest.stitching.pairs:
        out += [f"Pair `{p.name}`:", "", _cka_table(p.cka, p.big, p.little, (tags[p.big], tags[p.little])), ""]
        if p.rejected:
            out += ["No stitch candidate in this pair; pairs of blocks the rule rejected:", ""]
            out += [*(f"- {line}" for line in p.rejected), ""]
    return out[:-1]


def _models_line(manifest: Manifest) -> str:
    m = manifest.models
    if not m.anchors:
        return (
            f"- large model: `{m.large.name}` ({m.large.test_accuracy:.1%} test accuracy); "
            f"small model: `{m.small.name}` ({m.small.test_accuracy:.1%})"
        )
    each = "; ".join(
        f"{a.id} ({a.tag}): `{a.model.name}` ({a.flops / 1e6:.2f} MFLOPs, {a.model.test_accuracy:.1%} test accuracy)"
        for a in m.anchors
    )
    pairs = ", ".join(p.name for p in manifest.stitching.pairs or ())
    return f"- family of {len(m.anchors)} anchors, largest first: {each}; pairs stitched: {pairs}"


def accuracy_note(manifest: Manifest) -> str:
    """What each accuracy column is, and which one the selection used."""
    return (
        "`ships` is decided on `val acc` (fp32, validation split; ± is one binomial standard error "
        f"sqrt(p(1-p)/n), n = {manifest.data.val}). `test acc` (fp32) and `deployed acc` (the exported model) "
        "come from the test split and play no part in the decision."
    )


def files_line(model_files: Mapping[str, int]) -> str:
    """``variants.tflite (363.8 KiB)``: the bundle's model files and their sizes."""
    return ", ".join(f"{name} ({format_size(size)})" for name, size in sorted(model_files.items())) or "none"


def render_report(manifest: Manifest, model_files: Mapping[str, int]) -> str:
    """The whole ``report.md`` text; ``model_files`` maps the bundle's model files to their sizes in bytes."""
    p, t, m = manifest.profile, manifest.target, manifest.models
    rule = manifest.stitching.rule
    return "\n".join(
        [
            f"# restnet-compile bundle: profile `{p.name}`, target `{t.name}`",
            "",
            f"- device: {p.soc} ({p.runtime}); limits: latency p{p.latency_percentile} <= "
            f"{p.latency_budget_ms:g} ms, RAM <= {format_size(p.ram_bytes)}, "
            f"flash <= {format_size(p.flash_bytes)}",
            _models_line(manifest),
            f"- data: `{manifest.data.dataset}`: selection on the validation split ({manifest.data.val} images), "
            f"test accuracy on the test split ({manifest.data.test} images)",
            *(f"- data: {note}" for note in manifest.data.notes or ()),
            f"- model file(s): {files_line(model_files)}; seed {manifest.seed}",
            "",
            "## Variants",
            "",
            variant_table(manifest),
            "",
            "Latency and RAM are the profile's model estimates; `est. size` is the variant's model alone "
            f"(the bundle stores shared blocks once). {accuracy_note(manifest)}",
            "",
            *([f"Selection: {manifest.selection.rule}.", ""] if manifest.selection is not None else []),
            "## CKA between block outputs (calibration split)",
            "",
            *_cka_section(manifest),
            "",
            f"Candidate rule `{rule.rule}`: depth band {rule.depth_band}, at least {rule.min_suffix_blocks} "
            f"suffix block(s), at most {rule.max_candidates} candidates.",
            "",
            *_rejected_section(manifest),
            *(line_section(manifest) if m.anchors else []),
        ]
    )


def _rejected_section(manifest: Manifest) -> list[str]:
    """Why the rule found no stitch candidate, one line per pair of blocks it rejected (nothing when it found one)."""
    rejected = manifest.stitching.rejected
    if not rejected:
        return []
    ends = "the anchors" if manifest.models.anchors else "the two models"
    head = f"The rule found no stitch candidate, so only {ends} could ship. Pairs of blocks it rejected:"
    return ["## No stitch candidate", "", head, "", *(f"- {line}" for line in rejected), ""]
