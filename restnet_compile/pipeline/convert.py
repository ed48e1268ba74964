"""The exports' model conversions as jobs of a remote executor: the slowest part of an export, spread over the workers.

An export to TFLite converts every variant (or segment) through ONNX and onnx2tf (``Exporter.conversions``), each
conversion independent of the others. On a remote executor each distinct conversion of every profile is one job,
and each profile's export job gets their SavedModels (``export.tflite_convert.prebuilt``), so it only joins and
quantizes them; the bytes are those of an export that converted everything itself.

Conversions of whole variants start before anything says which variants ship, when a node would otherwise wait:
the anchors' before CKA and tuning, while the driver computes the prefix features
(:meth:`Conversions.start_anchors`), each stitch's as soon as it is tuned (:meth:`Conversions.start_variant`).
What else the selection ships (segments, whose cuts depend on it) starts once it is done
(:meth:`Conversions.collect`). A conversion that no export needs is cancelled; one that fails is left to the
export, which runs it again and says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from restnet_compile._util.progress import Reporter
from restnet_compile._util.torch_digest import module_digest
from restnet_compile.config.device import Target
from restnet_compile.export import EXPORTERS
from restnet_compile.export.base import Conversion
from restnet_compile.export.tflite_convert import Converted
from restnet_compile.pipeline.export import conversion_cost, conversions_of, convert_job
from restnet_compile.pipeline.jobs import Done, Executor, Job, Started
from restnet_compile.pipeline.state import Analysis

#: A conversion by its name and its module's digest.
Key = tuple[str, str]


class Conversions:
    """The conversions of one build's exports, run on ``executor``'s workers (jobs of ``threads`` CPUs)."""

    def __init__(self, executor: Executor, threads: int) -> None:
        self.executor, self.threads = executor, threads
        self._started: list[tuple[list[Key], Started]] = []
        self._whole: tuple[list[Target], tuple[int, int, int], np.ndarray[Any, Any]] | None = None

    def _job(self, c: Conversion) -> Job:
        return Job(convert_job, (self.executor.share(c),), f"convert {c.name}", self.threads, cost=conversion_cost(c))

    def _start(self, todo: dict[Key, Conversion]) -> None:
        if todo:
            keys = list(todo)
            self._started.append((keys, self.executor.start([self._job(todo[k]) for k in keys])))

    def _known(self) -> set[Key]:
        return {k for keys, _ in self._started for k in keys}

    def start_anchors(
        self,
        targets: list[Target],
        anchors: dict[str, nn.Module],
        input_shape: tuple[int, int, int],
        calib: np.ndarray[Any, Any],
    ) -> None:
        """Start converting each of ``anchors`` (id -> model; those that fit a profile) whole, for every one of
        ``targets`` that converts whole variants (not segments, whose cuts depend on the stitches that ship); the
        stitched variants :meth:`start_variant` is given later are converted for the same targets."""
        self._whole = (targets, input_shape, calib)
        for vid, model in anchors.items():
            self.start_variant(vid, model)

    def start_variant(self, vid: str, module: nn.Module) -> None:
        """Start converting variant ``vid`` whole, for the targets of :meth:`start_anchors` that convert whole
        variants, before selection says whether it ships (a stitch as soon as it is tuned: its task waits behind
        the tuning tasks not started yet, so it runs on a node that would otherwise wait for the last ones)."""
        if self._whole is None:
            return
        targets, input_shape, calib = self._whole
        todo: dict[Key, Conversion] = {}
        for target in targets:
            for c in EXPORTERS.get(target.exporter)().conversions({vid: module}, input_shape, calib, target):
                if c.name == vid:
                    todo.setdefault((c.name, module_digest(c.module)), c)
        known = self._known()
        self._start({k: c for k, c in todo.items() if k not in known})  # one variant per start: cancelled alone

    def collect(self, analyses: dict[str, Analysis], skip: set[str], progress: Reporter) -> dict[str, list[Converted]]:
        """Every conversion the export of each of ``analyses`` (but ``skip``: exports the cache holds) runs, those
        not started yet started now; each profile's SavedModels once all are done."""
        wanted: dict[str, list[Key]] = {}
        todo: dict[Key, Conversion] = {}
        known = self._known()
        for n, a in analyses.items():
            if n in skip:
                continue
            mine = conversions_of(a)
            wanted[n] = [(c.name, module_digest(c.module)) for c in mine]
            todo.update((k, c) for k, c in zip(wanted[n], mine, strict=True) if k not in known)
        self._start(todo)
        needed = {k for ks in wanted.values() for k in ks}
        if needed:
            progress.stage("converting", len(needed))
        made: dict[Key, Converted] = {}
        for keys, started in self._started:
            if not needed.intersection(keys):  # an anchor that does not ship, or an export the cache holds
                self.executor.cancel(started)
                continue

            def counted(k: int, _d: Done[Any], keys: list[Key] = keys) -> None:
                if keys[k] in needed:
                    progress.advance("converting")

            for key, d in zip(keys, self.executor.finish(started, progress, counted), strict=True):
                if d.error is None and d.value is not None:
                    made[key] = d.value
        self._started = []
        return {n: [made[k] for k in ks if k in made] for n, ks in wanted.items()}
