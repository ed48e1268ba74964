"""Stage 8: every exported variant run through the device runtime and checked against PyTorch; reference outputs kept.

The device runtime opens the exported files through the manifest the export stage wrote beside them.

A stitched variant that fails the target's parity rule (or does not run on the device's runtime) is dropped with its
reason, unless the build asks for ``strict_parity``: the driver then decides the selection again without it and
exports again (:func:`restnet_compile.pipeline.driver.export_and_check`). An anchor that fails is always an error:
its failure says the target cannot run the model itself, not that one stitch rounds badly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from restnet_compile._util.progress import Reporter
from restnet_compile._util.quiet import quiet_native_output
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.bundle.reference import REFERENCE_SAMPLES, write_reference
from restnet_compile.data import Images
from restnet_compile.errors import InfeasibleError, ParityError
from restnet_compile.export.parity import ParityResult, check_parity, torch_logits
from restnet_compile.models.batching import forward_rows
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.manifest_build import add_parity
from restnet_compile.pipeline.state import Analysis, Exported, ParityDrops
from restnet_compile.runtime import Bundle


def _runtime_failures(bundle: Bundle, ex: Exported, images: Images) -> dict[str, str]:
    """Variant id -> why, for every shipped variant the device runtime cannot run."""
    a, out = ex.analysis, {}
    for vid in a.shipped():
        try:
            bundle.run(images[:1], vid)
        except RuntimeError as exc:  # e.g. XNNPACK cannot prepare a node: the device's LiteRT would fail alike
            out[vid] = f"does not run on {a.profile.runtime} ({a.target.name}): {' '.join(str(exc).split())}"
    return out


def _judge(a: Analysis, failed: dict[str, str]) -> ParityDrops:
    """The drops of ``failed`` (variant id -> why), or the error when strict parity is asked for or an anchor fails.

    Raises:
        ParityError: ``strict_parity``, or an anchor among ``failed``.
    """
    kinds = {v.id: v.kind for v in a.variants}
    anchors = [vid for vid in failed if kinds[vid] != "stitched"]
    if anchors or a.config.strict_parity:
        vid = (anchors or list(failed))[0]
        why = failed[vid]
        if why.startswith("does not run"):
            raise ParityError(f"variant {vid} {why}")
        raise ParityError(f"variant {vid} fails parity on target {a.target.name}: {why}")
    return ParityDrops(failed)


def parity_stage(ex: Exported, stage: Path, progress: Reporter) -> Manifest | ParityDrops:
    """The manifest with every shipped variant's deployed accuracy and parity, ``reference.npz`` written; or the
    stitched variants that failed, with their reasons, when nothing else did and ``strict_parity`` is off.

    Raises:
        ParityError: an anchor does not run on the device runtime or fails the target's parity limits, or any variant
            does with ``strict_parity`` (exit code 4).
    """
    a = ex.analysis
    shipped = a.shipped()
    manifest = ex.manifest
    test = a.splits.test
    with quiet_native_output():  # interpreters announce their delegates on first use
        bundle = Bundle.open(stage)
        broken = _runtime_failures(bundle, ex, test.images)
    if broken:
        return _judge(a, broken)
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
    failed = {k: "; ".join(r.failures) for k, r in parity.items() if r.failures}
    if failed:
        return _judge(a, failed)
    manifest = add_parity(manifest, parity)
    n = REFERENCE_SAMPLES
    deployed = {vid: bundle.run(test.images[:n], vid) for vid in shipped}
    write_reference(stage, test.images[:n], {vid: r[:n] for vid, r in refs.items()}, deployed)
    return manifest


def _reason(why: str, target: str) -> str:
    return why if why.startswith("does not run") else f"fails parity on {target}: {why}"


def drop_variants(a: Analysis, drops: ParityDrops, progress: Reporter) -> Analysis:
    """``a`` with the dropped variants marked and the selection decided again without them.

    Raises:
        ParityError: no variant that fits the profile is left.
    """
    target = a.target.name
    for vid, why in drops.reasons.items():
        progress(f"  parity: {vid} dropped on {target}: {why}")
    marked = [
        dataclasses.replace(v, parity_failure=_reason(drops.reasons[v.id], target)) if v.id in drops.reasons else v
        for v in a.variants
    ]
    try:
        variants = decide(marked, a.profile, a.config, len(a.splits.val))
    except InfeasibleError:
        failed = "; ".join(f"{vid}: {why}" for vid, why in drops.reasons.items())
        raise ParityError(
            f"no variant that fits profile {a.profile.name} passes parity on {target}: {failed}"
        ) from None
    progress(f"  selection decided again without {', '.join(drops.reasons)}; exporting again")
    return dataclasses.replace(a, variants=variants)
