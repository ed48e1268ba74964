"""The driver: runs the build's stages in data-flow order, each a typed function with its own cache key.

load -> cka -> candidates -> tune -> costs -> decide -> export (graph costs, decide again) -> parity -> publish
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from restnet_compile._util.progress import Reporter, as_reporter
from restnet_compile.bundle.writer import check_output_dir
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile, Target, load_profile, load_target
from restnet_compile.errors import BadInputError, RestnetError
from restnet_compile.export import EXPORTERS
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.choices import check_choices
from restnet_compile.pipeline.cka import cka_stage
from restnet_compile.pipeline.costs import anchor_variant, stitched_variant
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.load import load_models, load_splits
from restnet_compile.pipeline.publish import BuildResult, publish
from restnet_compile.pipeline.stage_store import StageCache
from restnet_compile.pipeline.state import Analysis
from restnet_compile.pipeline.tune import tune_stage

Progress = Callable[[str], None] | Reporter


def resolve(config: BuildConfig) -> tuple[Profile, Target]:
    """Load the profile and target of ``config`` and check that they fit together.

    Raises:
        BadInputError: unknown profile, target, exporter, adapter or recipe, or a target whose dtype the profile
            cannot run.
    """
    check_choices(config)
    profile = load_profile(config.profile)
    target = load_target(config.target or profile.target)
    if target.dtype not in profile.dtypes:
        raise BadInputError(
            f"target {target.name} emits {target.dtype} models but profile {profile.name} runs only "
            f"{', '.join(profile.dtypes)}; choose a target with one of those dtypes"
        )
    if target.float_ops and "fp32" not in profile.dtypes:  # an int8-only device: no float fallback for any op
        target = target.model_copy(update={"float_ops": []})
    EXPORTERS.get(target.exporter)
    return profile, target


def analyze_and_stitch(
    config: BuildConfig, profile: Profile, target: Target, progress: Progress, store: StageCache | None = None
) -> Analysis:
    """Load models and data, compute CKA, plan, build and tune candidates, cost them and decide what ships.

    ``store`` serves the CKA matrix and tuned adapters from the build cache where it can (default: no cache).
    The caller sets the process state (see :func:`restnet_compile._util.torch_state.deterministic`).
    """
    progress = as_reporter(progress)
    store = store or StageCache(None, progress)
    large, small = load_models(config)
    splits = load_splits(config, large)
    cka = cka_stage(config, large, small, splits, store, progress)
    p = plan(config, cka, large, small)
    progress(f"stitching {len(p.candidates)} candidates: {', '.join(c.point.variant_id for c in p.candidates)}")
    anchors = [anchor_variant(k, m, splits, profile, target) for k, m in (("large", large), ("small", small))]
    tuned = tune_stage(config, p, large, small, splits, store, progress)
    stitched = [stitched_variant(sv, splits, profile, target, large.input_shape) for sv in tuned]
    variants = decide(anchors + stitched, profile, config, len(splits.val))
    return Analysis(config, profile, target, large, small, splits, cka, p.rule, variants)


def run_build(config: BuildConfig, out_dir: Path, progress: Progress, cache: Path | bool = True) -> BuildResult:
    """Every stage of one build; publishes ``out_dir/<profile>-<target>/`` and its ``.tar.gz`` atomically."""
    reporter = as_reporter(progress)
    profile, target = resolve(config)
    check_output_dir(out_dir)
    store = StageCache.open(cache, reporter)
    analysis = analyze_and_stitch(config, profile, target, reporter, store)
    try:
        return publish(analysis, out_dir, f"{profile.name}-{target.name}", reporter, store)
    except OSError as exc:  # a full disk or a vanished directory while writing: nothing is published
        raise RestnetError(f"output {out_dir}: cannot write the bundle: {exc.strerror or exc}") from None
