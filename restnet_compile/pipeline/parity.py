"""Stage 8: every exported variant run through the device runtime and checked against PyTorch; reference outputs kept.

The manifest is written first, because the device runtime opens the bundle through it.
"""

from __future__ import annotations

from pathlib import Path

from restnet_compile._util.progress import Reporter
from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.bundle.manifest import MANIFEST, Manifest, write_manifest
from restnet_compile.bundle.reference import REFERENCE_SAMPLES, write_reference
from restnet_compile.errors import ParityError
from restnet_compile.export.parity import ParityResult, check_parity, torch_logits
from restnet_compile.models.batching import forward_rows
from restnet_compile.pipeline.export import Exported
from restnet_compile.pipeline.manifest_build import add_parity, build_manifest
from restnet_compile.runtime import Bundle


def parity_stage(ex: Exported, stage: Path, progress: Reporter) -> Manifest:
    """The manifest with every shipped variant's deployed accuracy and parity; ``reference.npz`` written.

    Raises:
        ParityError: a variant does not run on the device runtime, or disagrees with PyTorch beyond the target's
            parity limits (exit code 4).
    """
    a = ex.analysis
    shipped = a.shipped()
    manifest = build_manifest(a, ex.variants, ex.layout, ex.segment_costs)
    write_manifest(stage / MANIFEST, manifest)
    test = a.splits.test
    with quiet_native_output():  # interpreters announce their delegates on first use
        bundle = Bundle.open(stage)
        for vid in shipped:
            try:
                bundle.run(test.images[:1], vid)
            except RuntimeError as exc:  # e.g. XNNPACK cannot prepare a node: the device's LiteRT would fail alike
                why = " ".join(str(exc).split())
                runtime = f"{a.profile.runtime} ({a.target.name})"
                raise ParityError(f"variant {vid} does not run on {runtime}: {why}") from None
    refs = {vid: torch_logits(module, test.images) for vid, module in shipped.items()}
    progress.stage("parity", len(shipped))
    parity: dict[str, ParityResult] = {}
    for vid in shipped:
        rows = forward_rows(shipped[vid])
        parity[vid] = check_parity(bundle, vid, refs[vid], test.images, test.labels, a.target, rows)
        progress(
            f"  parity {vid}: agreement {parity[vid].top1_agreement:.1%}, max |diff| {parity[vid].max_abs_diff:.2e}"
        )
        progress.advance("parity")
    failed = {k: r.failures for k, r in parity.items() if r.failures}
    if failed:
        vid, reasons = next(iter(failed.items()))
        raise ParityError(f"variant {vid} fails parity on target {a.target.name}: {'; '.join(reasons)}")
    manifest = add_parity(manifest, parity)
    n = REFERENCE_SAMPLES
    deployed = {vid: bundle.run(test.images[:n], vid) for vid in shipped}
    write_reference(stage, test.images[:n], {vid: r[:n] for vid, r in refs.items()}, deployed)
    return manifest
