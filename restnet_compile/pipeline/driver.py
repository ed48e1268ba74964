"""The driver: runs the build's stages in data-flow order, for one device profile or a fleet of them.

load -> screen -> cka -> candidates -> tune -> costs -> decide (:func:`analyze_fleet`), then per profile export
(graph costs, decide again) -> parity (a stitch that fails it dropped, export again) (:func:`export_and_check`) ->
publish (:func:`_ship`). The records they pass are in :mod:`.state`.

A family of K anchors (``models:``) runs the same stages over its pairs of anchors (:mod:`.family`): one screen of
every anchor and stitch, one CKA pass for every pair, each pair planned and tuned as its own build would be, then one
selection, export and bundle across the whole family.

A fleet (``profiles: [mcu, phone, jetson]``) shares everything that does not depend on the device: the models and
data are loaded, CKA is computed and each candidate is tuned once (the union of the profiles' candidates); then each
profile gets its own costs, selection, export, parity, manifest and archive, published atomically, exactly the bundle
a build of that profile alone writes. A profile that fails (nothing fits it, a parity failure...) publishes nothing,
and the others are still published; the fleet's exit code is the highest of the failures'. A single-profile build
raises the failure instead. Every check of the input (names, files, the same profile twice, the executor, the
device) comes first, before anything is computed or written.

The jobs (one tuning per candidate, one export + parity per profile) run through an executor (:mod:`.executor`).
On a remote executor, export and parity run on a worker, which may be another machine and shares no files with the
driver (:func:`bundle_job`): it writes them into a temporary folder of its own and sends them back (:class:`Staged`),
and the driver writes them into its own folder before publishing, so the bytes are the same. The worker never opens
the driver's build cache: the driver sends the cache entry the export would reuse, if it has one, and the worker sends
back the entries it computed, which the driver stores.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restnet_compile._util.progress import Reporter, as_reporter
from restnet_compile._util.tempdirs import make_owned_dir, owned_dir
from restnet_compile.bundle.manifest import Manifest
from restnet_compile.bundle.result import BuildResult, FleetResult, ProfileFailure
from restnet_compile.bundle.writer import check_output_dir
from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import Profile, Target, load_profile, load_target
from restnet_compile.errors import BadInputError, RestnetError
from restnet_compile.export import EXPORTERS
from restnet_compile.export.tflite_convert import Converted, prebuilt
from restnet_compile.pipeline.build_memory import check_batch_fits
from restnet_compile.pipeline.cache.disk import DiskCache
from restnet_compile.pipeline.cache.stages import CacheBlob, StageCache, entries_of
from restnet_compile.pipeline.candidates import plan
from restnet_compile.pipeline.choices import check_choices, resolve_device
from restnet_compile.pipeline.cka import family_cka
from restnet_compile.pipeline.convert import Conversions
from restnet_compile.pipeline.costs import anchor_variant, on_profile, stitched_variant
from restnet_compile.pipeline.decide import decide
from restnet_compile.pipeline.executor import BUNDLE_PREFIX, open_executor, sweep_temp
from restnet_compile.pipeline.export import KEY as EXPORT_KEY
from restnet_compile.pipeline.export import export_inputs, export_stage
from restnet_compile.pipeline.family import Family, load_family
from restnet_compile.pipeline.jobs import Executor, Job, LocalExecutor
from restnet_compile.pipeline.load import load_splits
from restnet_compile.pipeline.parity import drop_variants, parity_stage
from restnet_compile.pipeline.publish import publish
from restnet_compile.pipeline.screen import screen
from restnet_compile.pipeline.state import Analysis, Checked, PairResult, Plan, Staged, Variant
from restnet_compile.pipeline.tune import tune_stage

Progress = Callable[[str], None] | Reporter
Failed = Callable[["Request", RestnetError], None]


@dataclass(frozen=True)
class Request:
    """One profile of a build: the config a build of that profile alone gets, its profile and its target."""

    config: BuildConfig
    profile: Profile
    target: Target

    @property
    def name(self) -> str:
        """The bundle's name: ``<profile>-<target>``."""
        return f"{self.profile.name}-{self.target.name}"


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


def resolve_all(config: BuildConfig) -> list[Request]:
    """One request per profile of ``config``, in the order given, on the device ``config.device`` resolves to.

    Raises:
        BadInputError: anything :func:`resolve` refuses, the same profile given twice, or ``device: cuda`` where
            torch sees no GPU.
    """
    check_choices(config)
    device = resolve_device(config.device)
    requests: list[Request] = []
    given: dict[str, str] = {}
    for ref in config.profile_names():
        single = config.for_profile(ref).model_copy(update={"device": device})
        profile, target = resolve(single)
        if profile.name in given:
            how = "" if given[profile.name] == ref else f" (as {given[profile.name]!r} and {ref!r})"
            raise BadInputError(f"profile {profile.name} is given twice{how}; give each profile once")
        given[profile.name] = ref
        requests.append(Request(single, profile, target))
    return requests


def analyze_fleet(
    requests: list[Request],
    progress: Reporter,
    cache: StageCache,
    executor: Executor,
    failed: Failed | None,
    conversions: Conversions | None = None,
) -> dict[str, Analysis]:
    """Load, screen, CKA and tuning once; costs and decisions per request. Request name -> its analysis.

    A family's pairs are planned and tuned each as that pair's own build would be, and selected together.
    A request that nothing fits is passed to ``failed`` and left out (raised when ``failed`` is None).
    ``conversions``: where the exports' conversions of the anchors that fit a profile start, before CKA.
    """
    family = load_family(requests[0].config)
    requests = [dataclasses.replace(r, config=family.canonical(r.config)) for r in requests]
    base = requests[0].config  # CKA and tuning do not depend on the profile: any request's config keys them
    if not family.is_pair:
        order = ", ".join(f"{a.tag} {a.id} {a.spec.name} ({a.flops / 1e6:.2f} MFLOPs)" for a in family.anchors)
        progress(f"family of {len(family.anchors)} anchors by FLOPs: {order}; {len(family.pairs)} pairs stitched")
    check_batch_fits(base, *family.models)
    screened = screen(base, [(r.profile, r.target) for r in requests], family)
    infeasible = [r for r in requests if r.profile.name in screened.failures]
    if infeasible and failed is None:
        raise screened.failures[infeasible[0].profile.name]
    live = [r for r in requests if r not in infeasible]
    splits = load_splits(base, family.anchors[0].model) if live else None  # bad data is refused before reporting
    if failed is not None:
        for r in infeasible:
            failed(r, screened.failures[r.profile.name])
    if splits is None:
        return {}
    for note in splits.notes:
        progress(f"data: {note}")
    if conversions is not None:
        fit = {a for r in live for a in screened.anchors_fit[r.profile.name]}
        conversions.start_anchors(
            [r.target for r in live],
            {a.id: a.model for a in family.anchors if a.id in fit},
            family.anchors[0].model.input_shape,
            np.asarray(splits.calib.images[: max(r.target.calibration_samples for r in live)]),
        )
    fits = ", ".join(f"{r.profile.name} runs {screened.fits(r.profile.name)}" for r in live)
    progress(f"costs screened before CKA: of {len(screened.stitches)} possible stitches, {fits}")
    ckas = family_cka(base, family, splits, cache, progress)
    plans = {
        r.name: {
            p.name: plan(
                r.config,
                ckas[p.name],
                p.big.model,
                p.little.model,
                screened.runnable[r.profile.name][p.name],
                screened.misses[r.profile.name][p.name],
                (p.big.tag, p.little.tag),
            )
            for p in family.pairs
        }
        for r in live
    }
    for r in live:
        _say_rejected(family, plans[r.name], r.profile.name, progress)
    costs = screened.costs[live[0].profile.name]
    anchors = [anchor_variant(a.id, a.model, splits, costs[a.id]) for a in family.anchors]
    stitched: dict[str, Variant] = {}
    shared: dict[str, Plan] = {}
    for p in family.pairs:
        union = sorted(
            {c for mine in plans.values() for c in mine[p.name].candidates},
            key=lambda c: (c.point.front_block, c.point.back_block),
        )
        shared[p.name] = dataclasses.replace(plans[live[0].name][p.name], candidates=union)
    listed = [c.point.variant_id for sp in shared.values() for c in sp.candidates]
    progress(f"stitching {len(listed)} candidates: {', '.join(listed)}")
    for p in family.pairs:
        if not family.is_pair and not shared[p.name].candidates:
            continue
        pair_config = p.config(base)
        early = (lambda sv: conversions.start_variant(sv.candidate.point.variant_id, sv.net)) if conversions else None
        for sv in tune_stage(
            pair_config, shared[p.name], p.big.model, p.little.model, splits, cache, progress, executor, early
        ):
            vid = sv.candidate.point.variant_id
            stitched[vid] = stitched_variant(sv, splits, costs[vid], family=not family.is_pair)
    analyses: dict[str, Analysis] = {}
    for r in live:
        mine = anchors + [stitched[c.point.variant_id] for p in family.pairs for c in plans[r.name][p.name].candidates]
        variants = decide(on_profile(mine, screened.costs[r.profile.name]), r.profile, r.config, len(splits.val))
        pairs = tuple(
            PairResult(p.name, p.big.id, p.little.id, ckas[p.name], plans[r.name][p.name].rejected)
            for p in family.pairs
        )
        first = family.pairs[0].name
        why = plans[r.name][first].rejected if family.is_pair else _family_rejected(pairs)
        analyses[r.name] = Analysis(
            r.config,
            r.profile,
            r.target,
            family.anchors[0].model,
            family.anchors[-1].model,
            splits,
            ckas[first],
            shared[first].rule,
            variants,
            why,
            family.anchors,
            pairs,
        )
    return analyses


def _family_rejected(pairs: tuple[PairResult, ...]) -> tuple[str, ...]:
    """A family's lines for the manifest's ``rejected``: every pair's, named by pair, when no pair has a candidate."""
    if not all(p.rejected for p in pairs):
        return ()
    return tuple(f"{p.name}: {line}" for p in pairs for line in p.rejected)


def _say_rejected(family: Family, plans: dict[str, Plan], profile: str, progress: Reporter) -> None:
    """Say why a pair has no stitch candidate on ``profile`` (a two-model build: only the two models can ship)."""
    for name, p in plans.items():
        if not p.rejected:
            continue
        if family.is_pair:
            progress(f"profile {profile}: no stitch candidate, only the two models can ship; pairs rejected:")
        else:
            progress(f"profile {profile}: no stitch candidate between anchors {name}; pairs rejected:")
        for line in p.rejected:
            progress(f"  {line}")


def analyze_and_stitch(
    config: BuildConfig, profile: Profile, target: Target, progress: Progress, cache: StageCache | None = None
) -> Analysis:
    """Load models and data, screen costs, compute CKA, plan, build and tune candidates, cost them and decide.

    ``cache`` serves the CKA matrix and tuned adapters from the build cache where it can (default: no cache).
    The caller sets the process state (see :func:`restnet_compile._util.torch_state.deterministic`).

    Raises:
        InfeasibleError: nothing fits ``profile`` (found before CKA and tuning).
    """
    reporter = as_reporter(progress)
    request = Request(config.model_copy(update={"device": resolve_device(config.device)}), profile, target)
    cache = cache or StageCache(None, reporter)
    return analyze_fleet([request], reporter, cache, LocalExecutor(), None)[request.name]


def export_and_check(a: Analysis, stage: Path, cache: StageCache, progress: Reporter) -> Checked:
    """export -> parity: ``a``'s selection exported into ``stage`` and checked against PyTorch through the device
    runtime; the files and the manifest without reports, model bytes and checksums.

    A stitched variant that fails parity is dropped, the selection decided again without it and the new selection
    exported (see :mod:`restnet_compile.pipeline.parity`).

    Raises:
        ParityError: an anchor fails parity, no variant is left, or any variant fails with ``strict_parity``.
    """
    # beside ``stage``, so a killed build's leftovers are in one place; absolute, because exporters change directory
    # (onnx2tf runs in its work dir) and ``stage`` may be relative
    work = (stage.parent / "work").resolve()
    work.mkdir()
    for _attempt in range(len(a.variants)):  # each repeat drops at least one stitched variant
        exported = export_stage(a, stage, work, cache, progress)
        checked = parity_stage(exported, stage, progress)
        if isinstance(checked, Manifest):
            return Checked(checked, stage)
        a = drop_variants(exported.analysis, checked, progress)
    raise AssertionError("parity dropped more variants than the build has")


def cache_seed(a: Analysis, cache: StageCache) -> list[CacheBlob]:
    """The driver's cache entry for the export of ``a``'s selection, if it has one (for :func:`bundle_job`)."""
    if cache.root is None:
        return []
    found = cache.blob(cache.digest(EXPORT_KEY, export_inputs(a, cache)))
    return [found] if found is not None else []


def bundle_job(
    a: Analysis,
    name: str,
    seed: list[CacheBlob],
    caching: bool,
    converted: list[Converted],
    *,
    progress: Reporter,
) -> Staged:
    """export -> parity of ``a`` in a temporary folder (a job of the executor), sent back whole.

    ``seed`` holds the driver's cache entries the job may reuse; with ``caching``, the entries it computes are sent
    back for the driver to store. ``converted``: the export's model conversions, already run by other jobs.
    """
    sweep_temp()
    tmp = make_owned_dir(Path(tempfile.gettempdir()), BUNDLE_PREFIX)
    try:
        cache = StageCache(DiskCache(tmp / "cache"), progress) if caching else StageCache(None, progress)
        if cache.disk is not None:
            for b in seed:
                cache.disk.put(b.key, b.meta, b.files)
        stage = tmp / name
        stage.mkdir()
        with prebuilt(converted) as used:
            checked = export_and_check(a, stage, cache, progress)
        if converted:
            progress(f"  export: {len(used)} of {len(converted)} conversions made by other tasks")
        paths = sorted(stage.rglob("*"))
        files = {p.relative_to(stage).as_posix(): p.read_bytes() for p in paths if p.is_file()}
        dirs = [p.relative_to(stage).as_posix() for p in paths if p.is_dir()]
        fresh = entries_of(cache.disk, {b.key for b in seed}) if cache.disk is not None else []
        return Staged(checked.manifest, files, dirs, cache.events, fresh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stage_remotely(
    analyses: dict[str, Analysis],
    cache: StageCache,
    executor: Executor,
    conversions: Conversions,
    progress: Reporter,
) -> dict[str, Staged | RestnetError]:
    """Export and parity of every profile at once, as jobs on the executor's workers (their conversions first)."""
    names = list(analyses)
    caching = cache.root is not None
    threads = next(iter(analyses.values())).config.threads
    seeds = {n: cache_seed(analyses[n], cache) for n in names}
    converted = conversions.collect(analyses, {n for n in names if seeds[n]}, progress)
    jobs = [
        Job(
            bundle_job,
            (executor.share(analyses[n]), n, seeds[n], caching, converted.get(n, [])),
            f"export {n}",
            threads,
        )
        for n in names
    ]
    progress.stage("export + parity", len(jobs))
    done = executor.run(jobs, progress, lambda _k, _d: progress.advance("export + parity"))
    out: dict[str, Staged | RestnetError] = {}
    for n, d in zip(names, done, strict=True):
        if d.error is not None:
            out[n] = d.error
        else:
            out[n] = staged = d.get()
            cache.adopt(staged.entries)  # only the driver writes the cache
            cache.record(staged.events)
    return out


def _ship(
    a: Analysis, out_dir: Path, name: str, progress: Reporter, cache: StageCache, staged: Staged | None
) -> BuildResult:
    """export -> parity -> publish of one profile's bundle (``staged``: export and parity done on a worker).

    The files are made in a folder beside the bundle, so a killed build's leftovers are in one place and publishing
    moves them without copying.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with owned_dir(out_dir, f".{name}.tmp-") as scratch:
            stage = scratch / name
            stage.mkdir()
            checked = staged.unpack(stage) if staged else export_and_check(a, stage, cache, progress)
            return publish(checked, a.profile, out_dir, name, cache.summary())
    except OSError as exc:  # a full disk or a vanished directory while writing: nothing is published
        raise RestnetError(f"output {out_dir}: cannot write the bundle: {exc.strerror or exc}") from None


def run_fleet(config: BuildConfig, out_dir: Path, progress: Progress, cache: Path | bool = True) -> FleetResult:
    """Every profile of ``config`` built from one CKA and one tuning; each bundle published on its own.

    Raises:
        BadInputError: any invalid input, before anything is written (the failures of single profiles are in the
            result instead).
    """
    return _run(config, out_dir, as_reporter(progress), cache, keep_going=True)


def run_build(config: BuildConfig, out_dir: Path, progress: Progress, cache: Path | bool = True) -> BuildResult:
    """Every stage of one build; publishes ``out_dir/<profile>-<target>/`` and its ``.tar.gz`` atomically.

    Raises:
        BadInputError: invalid input, or a config that names several profiles (see :func:`run_fleet`).
    """
    names = config.profile_names()
    if len(names) > 1:
        raise BadInputError(
            f"build config names {len(names)} profiles ({', '.join(names)}); build them as a fleet (api.build_fleet)"
        )
    return _run(config, out_dir, as_reporter(progress), cache, keep_going=False).bundles[0]


def _run(
    config: BuildConfig, out_dir: Path, progress: Reporter, cache_dir: Path | bool, keep_going: bool
) -> FleetResult:
    requests = resolve_all(config)
    check_output_dir(out_dir)
    failures: dict[str, ProfileFailure] = {}

    def failed(r: Request, exc: RestnetError) -> None:
        progress(f"profile {r.profile.name}: {exc}")
        failures[r.name] = ProfileFailure(r.profile.name, exc.exit_code, str(exc))

    gpus = 1.0 if requests[0].config.device == "cuda" else 0.0
    with open_executor(
        config.executor, config.seed, config.threads, gpus, config.ray_timeout, config.verbose
    ) as executor:
        cache = StageCache.open(cache_dir, progress)
        # load -> screen -> cka -> candidates -> tune -> costs -> decide: once, for every profile
        conversions = Conversions(executor, config.threads) if executor.remote else None
        analyses = analyze_fleet(requests, progress, cache, executor, failed if keep_going else None, conversions)
        # export -> parity: on the workers, every profile at once (their conversions first); else per profile in _ship
        staged = _stage_remotely(analyses, cache, executor, conversions, progress) if conversions and analyses else {}
        bundles = []
        for r in requests:
            if r.name not in analyses:
                continue
            try:
                ready = staged.get(r.name)
                if isinstance(ready, RestnetError):
                    raise ready
                bundles.append(_ship(analyses[r.name], out_dir, r.name, progress, cache, ready))
            except RestnetError as exc:
                if not keep_going:
                    raise
                failed(r, exc)
    order = [r.name for r in requests]
    return FleetResult(bundles, [failures[n] for n in order if n in failures])
