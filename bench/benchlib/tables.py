"""Result tables of each benchmark, computed from its JSON file (used by ``bench/gen_readme.py``).

Every function takes the parsed file and returns Markdown lines: one or more tables and one line of conclusion
whose figures come from the same file. Accuracies are printed in percent, ratios as they are stored.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

Lines = list[str]


def table(header: list[str], rows: Iterable[list[str]]) -> Lines:
    """A Markdown table; ``|`` inside a cell is escaped."""
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in esc)]


def pct(x: float, digits: int = 1) -> str:
    """``0.9812`` -> ``98.1``."""
    return f"{100 * x:.{digits}f}"


def points(x: float) -> str:
    """An accuracy difference in points with its sign: ``0.0034`` -> ``+0.34``."""
    return f"{100 * x:+.2f}"


def goal_word(ok: bool) -> str:
    """``met`` or ``missed``."""
    return "met" if ok else "missed"


def _short_reason(reason: str) -> str:
    """``dominated by small: 0.16 ms ...`` -> ``dominated by small``; ``within 4.6% of ... (0.51 vs ...`` shortened."""
    if reason.startswith("dominated"):
        return reason.split(":")[0]
    return reason.split(" (")[0]


def cka(d: dict) -> Lines:
    """CKA matrix time against plain forward passes, per model pair."""
    rows = [
        [p["pair"], " x ".join(map(str, p["blocks"])), f"{p['cka_over_forward']:.3f}", f"<= {p['goal']}"]
        for p in d["pairs"]
    ]
    met = sum(p["meets_goal"] for p in d["pairs"])
    worst = max(p["cka_over_forward"] for p in d["pairs"])
    return [
        f"{d['images']} calibration images, batches of {d['batch_size']}, {d['threads']} thread, best of "
        f"{d['repeats']} repeats.",
        "",
        *table(["pair", "blocks", "CKA time / forward time", "goal"], rows),
        "",
        f"**Result.** {met} of {len(d['pairs'])} pairs meet the goal: the CKA sums add at most "
        f"{100 * (worst - 1):.0f} % to the forward passes they need anyway.",
    ]


def stitch_tuning(d: dict) -> Lines:
    """Adapter-only against end-to-end tuning, per candidate."""
    rows, above = [], 0
    for c in d["candidates"]:
        above += c["above_anchor_line"] > 0
        rows.append(
            [
                c["id"],
                c["adapter"],
                f"{c['flops'] / 1e6:.2f}",
                f"{c['cka']:.3f}",
                pct(c["test_accuracy_adapter_only"]),
                pct(c["test_accuracy_end_to_end"]),
                pct(c["anchor_line_accuracy"], 2),
                points(c["above_anchor_line"]),
                f"{c['time_ratio']:.3f}",
                f"{c['accuracy_ratio']:.3f}",
            ]
        )
    header = ["candidate", "adapter", "MFLOPs", "CKA", "adapter only, test %", "end to end, test %", "line %"]
    t, a_mean, a_min = d["time_ratio_all_candidates"], d["accuracy_ratio_mean"], d["accuracy_ratio_min"]
    return [
        f"Pair {d['pair']}, {d['epochs']} epochs on both sides, {d['train_images']:,} training images, "
        f"{d['test_images']:,} test images, {d['threads']} thread.",
        "",
        *table([*header, "above line", "time ratio", "accuracy ratio"], rows),
        "",
        f"**Result.** Time ratio {t:.3f} over all candidates (goal <= {d['time_goal']}: "
        f"{goal_word(t <= d['time_goal'])}); "
        f"accuracy ratio mean {a_mean:.3f}, min {a_min:.3f} (goal >= {d['accuracy_goal']}: "
        f"{goal_word(a_min >= d['accuracy_goal'])}); {above} of {len(d['candidates'])} adapter-only variants above the "
        "anchors' line.",
    ]


def _recipe_rows(pair: dict) -> tuple[list[str], Lines, tuple[int, float, str]]:
    ids = [c if isinstance(c, str) else c["id"] for c in pair["candidates"]]
    with_tune = {(r["adapter"], r["recipe"]) for r in pair["rows"] if "tune" in r}
    rows, scores = [], []
    for s in pair["summary"]:
        cells = []
        for cid in ids:
            c = s["candidates"][cid]
            spread = f" ± {100 * c['test_seed_sd']:.2f}" if s["seeds"] > 1 else ""
            cells.append(f"{pct(c['test_mean'], 2)}{spread} ({points(c['above_line'])})")
        settings = "current" if (s["adapter"], s["recipe"]) in with_tune else "earlier"
        ratio = f"{s['time_ratio']:.3f}" if "time_ratio" in s else "-"
        rank = f"{s['proxy_rank_corr']:.1f}"
        rows.append(
            [*(s["adapter"], s["recipe"], settings, str(s["seeds"])), *cells, str(s["above_line"]), ratio, rank]
        )
        margin = statistics.fmean(c["above_line"] for c in s["candidates"].values())
        scores.append((s["above_line"], margin, f"{s['adapter']} + {s['recipe']}"))
    e2e = {r["id"]: r["test_accuracy"] for r in pair["end_to_end"]}
    if e2e:
        rows.append(["end to end", "-", "-", "1", *(pct(e2e[i]) for i in ids), "-", "-", "-"])
    return ids, rows, max(scores)


def recipes(d: dict) -> Lines:
    """Adapters x recipes per model pair, against end-to-end tuning and the anchors' line."""
    out = [f"Conditions: {d['note']}", ""]
    for pair in d["pairs"]:
        ids, rows, (k, margin, best) = _recipe_rows(pair)
        if k:
            result = f"Most variants above the line: {best} ({k} of {len(ids)})."
        else:
            result = f"No variant above the line; closest: {best}, {points(margin)} points on average."
        a = pair["anchors"]
        out += [
            f"### {pair['pair']}",
            "",
            f"Anchors: large {a['large']['flops'] / 1e6:.2f} MFLOPs, {pct(a['large']['test_accuracy'])} % test "
            f"({pct(a['large']['val_accuracy'])} % val); small {a['small']['flops'] / 1e6:.2f} MFLOPs, "
            f"{pct(a['small']['test_accuracy'])} % test ({pct(a['small']['val_accuracy'])} % val). Cells: test % "
            "(mean ± SD over seeds) and, in brackets, points above the anchors' line.",
            "",
            *table(["adapter", "recipe", "settings", "seeds", *ids, "above line", "time ratio", "proxy rank"], rows),
            "",
            f"**Result.** {result}",
            "",
        ]
    return out[:-1]


def tune_ideas(rows: list[dict], ideas: dict[str, str]) -> Lines:
    """Tuning options on every candidate and seed (JSON lines), against the anchors' line."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["idea"], []).append(r)
    ids = list(dict.fromkeys(r["id"] for r in rows))
    line = {r["id"]: r["line"] for r in groups[next(iter(groups))]}
    out_rows = [["anchors' line", "", *(pct(line[i], 2) for i in ids), "", "", "", ""]]
    scores = []
    for idea, rs in groups.items():
        cells, above = [], 0
        for cid in ids:
            tests = [r["test_accuracy"] for r in rs if r["id"] == cid]
            mean = statistics.fmean(tests)
            above += mean > next(r["line"] for r in rs if r["id"] == cid)
            cells.append(f"{pct(mean, 2)} ± {100 * statistics.pstdev(tests):.2f}")
        val = statistics.fmean(r["val_accuracy"] for r in rs)
        train = pct(statistics.fmean(r["train_accuracy"] for r in rs), 2)
        unshared = [r["unshared_params"] for r in rs if r.get("unshared_params")]
        shared = f"{min(unshared):,}-{max(unshared):,}" if unshared else "0"
        seeds = len({r["seed"] for r in rs})
        out_rows.append([f"`{idea}`", f"{ideas[idea]} ({seeds} seeds)", *cells, str(above), pct(val, 2), train, shared])
        scores.append((above, val, idea))
    above, val, best = max(scores)
    runner_up = max(s for s in scores if s[2] != best)
    return [
        'Cells: test % (mean ± SD over seeds). "val" is the mean validation accuracy over all candidates and seeds, '
        'the criterion an idea is judged on; "train" the same on the (unaugmented) training split, where the gap to '
        '"val" shows overfitting; "unshared" counts small-model parameters a bundle would store again.',
        "",
        *table(["idea", "what changes", *ids, "above line", "val %", "train %", "unshared"], out_rows),
        "",
        f"**Result.** `{best}` puts the most variants above the line ({above} of {len(ids)}, val {pct(val, 2)} %); "
        f"no other idea puts more than {runner_up[0]}.",
    ]


def all_pairs(d: dict) -> Lines:
    """Every joinable (cut, resume) pair of the demo pair."""
    rows = [
        [
            s["id"],
            "yes" if s["planned"] else "no",
            f"{s['cka']:.3f}",
            f"{s['mflops']:.2f}",
            pct(s["line"], 2),
            pct(s["val_accuracy_init"]),
            pct(s["val_accuracy_mean"], 2),
            pct(s["test_accuracy_mean"], 2),
            "yes" if s["above_line"] else "no",
        ]
        for s in d["summary"]
    ]
    above = [s for s in d["summary"] if s["above_line"]]
    unplanned = max((s for s in d["summary"] if not s["planned"]), key=lambda s: s["test_accuracy_mean"])
    planned = "all in the plan" if all(s["planned"] for s in above) else "not all in the plan"
    t = d["tune"]
    return [
        f"{d['seeds']} seeds, default tuning ({t['adapter']}, {t['recipe']}, {t['epochs']} epochs, {t['schedule']} "
        f"rate, KD weight {t['distill_weight']} at T {t['temperature']}), both donors frozen; "
        f"{d['wall_seconds']:.0f} s.",
        "",
        *table(["pair", "planned", "CKA", "MFLOPs", "line %", "val after LS %", "val %", "test %", "above"], rows),
        "",
        f"**Result.** {len(above)} of {len(rows)} pairs are above the line ({', '.join(s['id'] for s in above)}), "
        f"{planned}; the best unplanned pair, {unplanned['id']}, reaches {pct(unplanned['test_accuracy_mean'], 2)} % "
        f"against a line of {pct(unplanned['line'], 2)} %.",
    ]


def export(d: dict) -> Lines:
    """Bundle size, export time and deployed accuracy per target."""
    base = d["targets"]["onnx-fp32"]["export_seconds_per_variant"]
    rows = []
    for name, t in sorted(d["targets"].items()):
        drops = t["accuracy_drop_vs_torch_fp32"]
        worst = max(drops, key=lambda k: (drops[k], k))
        change = f"{-100 * drops[worst]:+.1f} ({worst})" if drops[worst] > 0 else "0"
        best = -100 * min(drops.values())
        rows.append(
            [
                f"`{name}`",
                f"{t['bundle_bytes']:,}",
                f"{t['export_seconds_per_variant'] / base:.1f}x",
                change,
                f"{best:+.1f}" if best > 0 else "0",
            ]
        )
    s = d["tflite_int8_sharing"]
    share = [
        [
            f"{s['separate_total_bytes']:,}",
            f"{d['targets']['tflite-int8']['bundle_bytes']:,}",
            f"{s['bundle_over_separate']:.3f}",
            f"{s['anchors_int8_bytes']:,}",
            f"{s['adapters_int8_bytes_estimate']:,}",
            f"{s['bundle_over_anchors_plus_adapters']:.3f}",
        ]
    ]
    ok = s["goal_bundle_le_1.10x_anchors_plus_adapters"]
    return [
        f"Seed {d['seed']}, {len(d['variants'])} variants ({', '.join(d['variants'])}), every target in one run.",
        "",
        *table(["target", "bundle bytes", "export time / onnx-fp32", "worst accuracy change, points", "best"], rows),
        "",
        "Weight sharing in the multi-signature `tflite-int8` file:",
        "",
        *table(
            ["separate files, bytes", "one bundle", "bundle / separate", "large + small", "adapters", "bundle / both"],
            share,
        ),
        "",
        f"**Result.** One bundle takes {s['bundle_over_separate']:.2f}x the bytes of separate files; against large + "
        f"small + adapters it is {s['bundle_over_anchors_plus_adapters']:.3f}x (goal <= 1.10: {goal_word(ok)}). "
        "Quantization tables and constants that signatures share are stored once; each variant still has its own "
        "graph tables, and a block that two variants calibrate on different inputs keeps two sets of biases and "
        "scales.",
        *(["", f"**Older rows.** {why}"] if (why := d.get("superseded")) else []),
    ]


def switch(d: dict) -> Lines:
    """Switching signatures in an open interpreter against loading a separate file."""
    rows = [
        [
            vid,
            f"{v['steady_ms']:.4f}",
            f"{v['switched_ms']:.4f}",
            f"{v['load_separate_ms']:.4f}",
            f"{v['switch_over_load']:.4f}",
        ]
        for vid, v in sorted(d["variants"].items())
    ]
    return [
        f"Medians over {d['reps']} interleaved repetitions, in ms.",
        "",
        *table(["variant", "steady run", "right after another variant", "load as own file", "switch / load"], rows),
        "",
        f"**Result.** Switching costs at most {d['max_switch_over_load']} of a load (goal <= 0.01: "
        f"{goal_word(d['goal_le_0.01'])}).",
    ]


def latency(d: dict) -> Lines:
    """Predicted against measured latency, before and after calibration."""
    fits = [("data-sheet profile", "before"), ("calibrated, in sample", "after_in_sample")]
    fits.append(("calibrated, leave one out", "after_leave_one_out"))
    summary = [[name, f"{100 * d[k]['mdape']:.1f} %", f"{d[k]['spearman']:.2f}"] for name, k in fits]
    rows = [
        [
            vid,
            f"{v['flops'] / 1e6:.2f}",
            f"{v['measured_p50_ms']:.4f}",
            f"{v['measured_p90_ms']:.4f}",
            f"{v['predicted_before_ms']:.4f}",
            f"{v['predicted_after_ms']:.4f}",
            f"{v['predicted_loo_ms']:.4f}",
        ]
        for vid, v in sorted(d["variants"].items(), key=lambda kv: kv[1]["flops"])
    ]
    c, g, loo = d["calibrated"], d["goals"], d["after_leave_one_out"]
    ok = loo["mdape"] <= g["mdape_max"] and loo["spearman"] >= g["spearman_min"]
    return [
        f"Host profile, {d['runs']} interleaved runs after {d['warmup']} warm-up runs, machine {d['machine']}.",
        "",
        *table(["latency model", "median abs. error", "Spearman"], summary),
        "",
        *table(["variant", "MFLOPs", "p50 ms", "p90 ms", "data sheet ms", "calibrated ms", "leave one out ms"], rows),
        "",
        f"Calibrated: {c['peak_macs_gops']} GMAC/s peak, efficiency {c['efficiency']}, op overhead "
        f"{c['op_overhead_us']} us, invoke overhead {c['invoke_overhead_us']} us, "
        f"p90 / median {c['percentile_factor']}.",
        "",
        f"**Result.** Leave one out: median error {100 * loo['mdape']:.1f} %, Spearman {loo['spearman']:.2f} (goals "
        f"<= {100 * g['mdape_max']:.0f} % and >= {g['spearman_min']}: {goal_word(ok)}).",
    ]


def _profile_cell(p: dict, vid: str) -> str:
    ms = f"{p['variants'][vid]['latency_ms']:,.2f} ms"
    if vid in p["shipped"]:
        return f"{ms}, **ships**"
    why = p["dropped"].get(vid)
    if not why:
        return f"{ms}, no"
    return f"{ms}, over the budget" if why[0].startswith("latency") else f"{ms}, {_short_reason(why[0])}"


def _study(study: dict, with_accuracy: bool) -> Lines:
    profiles = list(study["profiles"])
    ids = list(study["accuracy"])
    rows = []
    for vid in ids:
        acc = study["accuracy"][vid]
        first = [f"{pct(acc['val'])} / {pct(acc['test'])}"] if with_accuracy else []
        mflops = f"{study['profiles'][profiles[0]]['variants'][vid]['mflops']:,.2f}"
        rows.append([vid, mflops, *first, *(_profile_cell(study["profiles"][p], vid) for p in profiles)])
    heads = [f"`{p}` ({v['target']}, budget {v['budget_ms']:g} ms)" for p, v in study["profiles"].items()]
    shape = "x".join(map(str, study["input_shape"]))
    out = [
        f"{study['large']} -> {study['small']}, input {shape}, `selection: {study['selection']}`; stitching and "
        f"tuning took {study['stitch_and_tune_s']:.0f} s.",
        "",
        *table(["variant", "MFLOPs", *(["val / test %"] if with_accuracy else []), *heads], rows),
        "",
    ]
    for p in profiles:
        if study["profiles"][p].get("infeasible"):
            out += [f"`{p}`: {study['profiles'][p]['infeasible']}.", ""]
    return out


def profiles(d: dict) -> Lines:
    """What each profile ships from the same variants, and why."""
    out = ["### Demo pair", "", *_study(d["demo"], True), "### Torchvision pair at 224 px, random weights", ""]
    out += _study(d["tv224"], False)
    ships = "; ".join(f"`{p}` ships {', '.join(v['shipped']) or 'nothing'}" for p, v in d["demo"]["profiles"].items())
    return [*out, f"**Result.** Demo pair: {ships}."]


def _settings(d: dict) -> str:
    s = d["settings"]
    threads = f", {s['threads']} torch thread" if "threads" in s else ""
    tuning = f"{s['tune']['epochs']} tuning epochs, at most {s['plan']['max_candidates']} candidates"
    return f"{d['pair']}, {tuning}{threads}"


def fail_fast(d: dict) -> Lines:
    """Time to exit 3 for a profile nothing fits, against the same build for a profile that fits."""
    rows = [
        [d[k]["profile"], str(d[k]["exit_code"]), f"{d[f'{k}_cpu_s']:.1f}", f"{d[f'{k}_s']:.1f}"]
        for k in ("infeasible", "feasible")
    ]
    return [
        f"{_settings(d)}; each build one process, `--no-cache`.",
        "",
        *table(["profile", "exit code", "CPU seconds", "wall seconds"], rows),
        "",
        f"The infeasible build's one line: `{d['error']}`",
        "",
        f"**Result.** Time to exit 3 / time of the feasible build = {d['exit3_over_build']} in CPU time "
        f"({d['exit3_over_build_wall']} in wall time; goal <= {d['goal']}: {goal_word(d['meets_goal'])}): the costs "
        "are screened before the data, CKA and tuning.",
    ]


def fleet(d: dict) -> Lines:
    """A fleet build against one build per profile: time and bytes."""
    rows = [
        [
            p,
            f"{d['separate_cpu_s'][p]:.1f}",
            f"{d['separate_s'][p]:.1f}",
            str(d["files_per_bundle"][p]),
            "yes" if d["bytes_identical"][p] else "NO",
            ", ".join(d["shipped"][p]),
        ]
        for p in d["profiles"]
    ]
    same = all(d["bytes_identical"].values())
    return [
        f"{_settings(d)}; each build one process, `--no-cache`.",
        "",
        *table(["profile", "separate build: CPU s", "wall s", "files", "fleet bundle = separate", "ships"], rows),
        "",
        f"Fleet build of {' + '.join(d['profiles'])}: {d['fleet_cpu_s']:.1f} CPU s ({d['fleet_s']:.1f} wall s); "
        f"the separate builds together: {d['separate_total_cpu_s']:.1f} CPU s ({d['separate_total_s']:.1f} wall s).",
        "",
        f"**Result.** Fleet / separate builds = {d['fleet_over_separate']} in CPU time "
        f"({d['fleet_over_separate_wall']} in wall time; goal <= {d['goal']}), bytes "
        f"{'identical' if same else 'DIFFERENT'} for every profile: {goal_word(d['meets_goal'])}.",
    ]


def ray(d: dict) -> Lines:
    """The Ray executor on a local instance against the local executor."""
    rows = [
        [
            str(r["threads"]),
            f"{r['local_s']:.1f}",
            f"{r['ray_s']:.1f}",
            f"{r['ray_over_local']:.3f}",
            "yes" if r["bytes_identical"] else "NO",
        ]
        for r in d["runs"]
    ]
    ratios = ", ".join(f"{r['ray_over_local']:.2f} at {r['threads']} thread(s)" for r in d["runs"])
    return [
        f"{_settings(d)}, profile {d['profile']}; a local Ray instance on {d['cpus']} CPUs started by the build.",
        "",
        *table(["torch threads", "local (s)", "ray (s)", "ray / local", "same bytes"], rows),
        "",
        f"**Result.** Ray / local = {ratios}; bytes {'identical' if d['bytes_identical'] else 'DIFFERENT'} (required).",
    ]


def cluster(d: dict) -> Lines:
    """A tuning-bound build on 2 nodes x 1 CPU against 1 node x 1 CPU of a real Ray cluster."""
    rows = [
        [
            str(r.get("round", 1)),
            f"{r['nodes']} x {r['cpus_per_node']} CPU",
            f"{r['seconds']:.1f}",
            f"{r['tuning_seconds']:.1f}" if "tuning_seconds" in r else "-",
            f"{r['load_before']:.1f} / {r['load_after']:.1f}",
        ]
        for r in d["runs"]
    ]
    same = "identical" if d["bytes_identical"] else f"DIFFERENT ({', '.join(d['different_files'])})"
    ratios = d.get("ratios", [d["speedup"]])
    slowdown = d.get("tuning_slowdown_side_by_side")
    return [
        f"{_settings(d)}, profile {d['profile']}, `--no-cache`; clusters started with `ray start` on one machine of "
        f"{d['cpus']} CPUs, the second node in its own mount namespace (no shared files). The 1-node and 2-node "
        "builds alternate, round by round; tuning is the sum of the candidates' own tuning times.",
        "",
        *table(["round", "cluster", "build (s)", "tuning (s)", "load average before / after"], rows),
        "",
        f"**Result.** Speed-up {d['speedup']:.2f}x, the median of {', '.join(f'{r:.2f}x' for r in ratios)} "
        f"(goal >= {d['goal']}): {goal_word(d['meets_goal'])}; bytes {same}."
        + (
            f" Tuned two at a time on this machine's two cores, the same candidates took {slowdown:.2f}x as long "
            f"as one at a time, which bounds the speed-up of the tuning part at {2 / slowdown:.2f}x here."
            if slowdown
            else ""
        ),
    ]


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def stream_memory(d: dict) -> Lines:
    """Peak resident memory and time per image of one 224 px build per dataset size."""

    def row(label: str, n: str, r: dict) -> list[str]:
        if r.get("timed_out"):
            return [label, n, "stopped after", f"{r['seconds']:.0f} s", "-", "-", "-"]
        if r.get("code") and r["code"] < 0:
            return [label, n, f"{_mib(r['peak_rss_bytes'])} until stopped", "-", "-", "-", f"{r['cpu_seconds']:.0f}"]
        if r.get("code"):
            return [label, n, f"exit {r['code']}", "-", "-", "-", "-"]
        return [
            label,
            n,
            _mib(r["peak_rss_bytes"]),
            r.get("feature_store") or "in memory (no store)",
            f"{r['cpu_seconds_per_image']:.3f}",
            f"{r['seconds_per_image']:.3f}",
            f"{r['cpu_seconds']:.0f}",
        ]

    rows = [row("streaming", n, r) for n, r in sorted(d["runs"].items(), key=lambda kv: int(kv[0]))]
    rows += [row("before streaming", n, r) for n, r in sorted(d["before"].items(), key=lambda kv: int(kv[0]))]
    lo, hi = d["rss_ratio_sizes"]
    largest = max(d["runs"], key=int)
    big = d["runs"][largest]
    unfinished = []
    if int(largest) != hi:
        unfinished = [
            f"The {int(largest):,}-image build was stopped after {big['seconds'] / 60:.0f} minutes, "
            f"{big['cpu_seconds']:.0f} CPU s, at its progress line `{big['error']}`: on this shared machine it would "
            "not have finished in the time there was. Its peak until then is in the table.",
            "",
        ]
    return [
        f"{d['pair']}; {d['data']}; {d['settings']['tune']['epochs']} tuning epoch, at most "
        f"{d['settings']['plan']['max_candidates']} candidates, profile {d['profile']}, target {d['target']}, "
        f"`--max-memory {d['max_memory']}`, {d['settings']['threads']} torch thread; each build one process, "
        f"`--no-cache`, all side by side on {d['cpus']} CPUs (load average {d['load_average'][0]:.1f} at the end).",
        "",
        *table(["code", "images", "peak RSS MiB", "feature store", "CPU s / image", "wall s / image", "CPU s"], rows),
        "",
        *unfinished,
        f"**Result.** Peak RSS at {hi:,} images / at {lo:,} images = {d['rss_ratio']} (goal <= {d['goal']} at "
        f"{int(largest):,} images: {goal_word(d['meets_goal']) if not unfinished else 'not measured'}).",
    ]


def feature_store(d: dict) -> Lines:
    """Tuning from each feature store: epoch time against ram, accuracy, and the adapter against ram's."""
    order = ["ram", "mmap", "mmap-fp16", "recompute"]
    rows = [
        [
            kind,
            f"{r['epoch_over_ram']:.2f}",
            f"{r['epoch_seconds']:.2f}",
            f"{r['fill_seconds']:.2f}",
            pct(r["val_accuracy"], 2),
            pct(r["test_accuracy"], 2),
            "identical" if r["adapter_identical_to_ram"] else f"max diff {r['adapter_max_abs_diff']:.1e}",
        ]
        for kind, r in sorted(d["stores"].items(), key=lambda kv: order.index(kv[0]))
    ]
    same = [k for k, r in d["stores"].items() if r["adapter_identical_to_ram"] and k != "ram"]
    return [
        f"{d['pair']} on {d['dataset']} ({d['train_images']:,} training images), candidate {d['candidate']}, 1 torch "
        f"thread; epoch time: fastest of {d['rounds']} rounds, the stores taking turns; accuracy after the default "
        f"recipe over {d['epochs']} epochs.",
        "",
        *table(["store", "epoch time / ram", "epoch s", "fill s", "val acc %", "test acc %", "adapter vs ram"], rows),
        "",
        f"**Result.** Adapters identical to the ram store's, byte for byte: {', '.join(same) or 'none'}.",
    ]


def _segment_size_rows(d: dict) -> Lines:
    rows = []
    for tag in ("three", "seven"):
        s = d[tag]
        for name, t in s["targets"].items():
            rows.append(
                [
                    str(len(s["variants"])),
                    f"`{name}`",
                    str(t["segments"]) if t["segments"] else "-",
                    f"{t['bundle_bytes']:,}",
                    f"{s['separate_files_bytes']:,}",
                    f"{s['large_plus_small_plus_adapters_bytes']:,}",
                    f"{t['over_large_small_adapters']:.3f}",
                    pct(t["min_top1_agreement"]),
                    points(-t["max_accuracy_drop"]),
                ]
            )
    return table(
        [
            "variants",
            "target",
            "segments",
            "bundle bytes",
            "K separate files",
            "large + small + adapters",
            "bundle / that",
            "worst top-1 agreement, %",
            "worst accuracy change, points",
        ],
        rows,
    )


def _latency_rows(d: dict) -> Lines:
    lit, calls = d["latency_litert"], d["latency_litert_calls"]
    micro, every = d["latency_tflm_host"], d["latency_tflm_host_every_block"]
    rows = [
        [
            f"`{v}`",
            f"{lit[v]['ratio']:.3f}",
            f"{calls[v]['ratio']:.3f}",
            f"{micro[v]['ratio']:.3f}",
            f"{every[v]['ratio']:.3f}",
        ]
        for v in sorted(lit)
    ]
    header = [
        "variant",
        "LiteRT: variant signature in `segments.tflite` / one graph",
        "LiteRT: a call per segment (`each`) / one graph",
        "TFLite Micro host: chain / one graph",
        "same, every-block cuts",
    ]
    return table(header, rows)


def _patch_rows(d: dict) -> Lines:
    rows = []
    for tag in ("three", "seven"):
        for name, p in d[tag]["patch_add_L4-S2"].items():
            rows.append(
                [
                    str(len(d[tag]["variants"])),
                    f"`{name}`",
                    f"{p['segments_from_old_bundle']} / {p['segments_as_delta']} of {p['segments']}",
                    f"{p['new_bytes']:,}",
                    f"{p['patch_bytes']:,}",
                    f"{p['bundle_bytes']:,}",
                    f"{p['patch_over_bundle']:.3f}",
                ]
            )
    header = [
        "variants after",
        "target",
        "model files kept / made from old bytes",
        "bytes found nowhere in the old bundle",
        "patch bytes",
        "full bundle bytes",
    ]
    return table([*header, "patch / bundle"], rows)


def segments(d: dict) -> Lines:
    """Bytes of segment bundles against one multi-signature file and separate files; chain latency; patch size."""
    seven = d["seven"]["targets"]
    one, each, multi = seven["tflite-int8-segments"], seven["tflite-int8-segments each"], seven["tflite-int8"]
    micro_bytes = seven["tflm-int8"]
    lit = [v["ratio"] for v in d["latency_litert"].values()]
    calls = [v["ratio"] for v in d["latency_litert_calls"].values()]
    micro = [v["ratio"] for v in d["latency_tflm_host"].values()]
    every_micro = [v["ratio"] for v in d["latency_tflm_host_every_block"].values()]
    patches7 = d["seven"]["patch_add_L4-S2"]
    patches3 = d["three"]["patch_add_L4-S2"]
    worst7 = max(p["patch_over_bundle"] for p in patches7.values())
    return [
        f"Seed {d['seed']}, dataset `{d['dataset']}`, {d['tune_epochs']} tuning epoch(s); medians of {d['runs']} "
        "interleaved runs of one image. `each`: `segment_file: each` (one file per segment); `every-block`: "
        "`tflm-int8` with `segment_cuts: every-block`.",
        "",
        *_segment_size_rows(d),
        "",
        *_latency_rows(d),
        "",
        "Patch adding `L4-S2` to the bundle of the other variants (model files, C arrays and manifest):",
        "",
        *_patch_rows(d),
        "",
        f"**Result.** Bytes, seven variants, over large + small + adapters: `tflite-int8` (one signature per whole "
        f"variant) {multi['over_large_small_adapters']:.3f} (goal <= 1.05: {goal_word(multi['goal_le_1.05'])}), "
        f"`tflite-int8-segments` (segments and variant signatures in one file) {one['over_large_small_adapters']:.3f} "
        f"({goal_word(one['goal_le_1.05'])}), the `tflm-int8` flash image "
        f"{micro_bytes['over_large_small_adapters']:.3f} ({goal_word(micro_bytes['goal_le_1.05'])}), one LiteRT file "
        f"per segment {each['over_large_small_adapters']:.3f} ({goal_word(each['goal_le_1.05'])}), at the same "
        "parity; three variants do not hold all of the large model, so every three-variant bundle is below 1. "
        "Latency against one graph: a variant signature of "
        f"`segments.tflite` {min(lit):.3f}-{max(lit):.3f} (goal <= 1.05: {goal_word(max(lit) <= 1.05)}), where one "
        f"Python call per segment takes {min(calls):.2f}-{max(calls):.2f} on these sub-millisecond models; TFLite "
        f"Micro host chain {min(micro):.3f}-{max(micro):.3f} ({sum(r <= 1.05 for r in micro)} of {len(micro)} within "
        f"1.05; the every-block column, the same segments with seven variants, reads {min(every_micro):.3f}-"
        f"{max(every_micro):.3f} and shows how much these timings vary). Patch / bundle adding `L4-S2` to the six "
        "others: "
        + ", ".join(f"`{n}` {p['patch_over_bundle']:.3f}" for n, p in patches7.items())
        + f" (goal <= 0.15: {goal_word(worst7 <= 0.15)}). To three-variant bundles, which lack large block 4 itself, "
        + ", ".join(f"`{n}` {p['patch_over_bundle']:.2f}" for n, p in patches3.items())
        + ".",
    ]


FIRMWARE_SIZE_COLUMNS = (
    *("cpu / kernels", "flash total", "model", "model / bundle", "runtime", "tflm", "libc", "RAM total"),
    *("arena", "build s"),
)


def firmware(d: dict) -> Lines:
    """Every MCU variant in a TFLite Micro firmware: numerics, flash and arena against the manifest, rebuild time."""
    lines: Lines = []
    for b in d["bundles"]:
        rows = []
        for run, r in b["runs"].items():
            for v in r["variants"]:
                same = "bit-exact" if v["bit_exact"] else f"max {v['max_int8_diff']} int8 steps"
                rows.append(
                    [
                        run, v["id"], same, pct(v["top1_agreement"], 0), f"{v['max_abs_diff_deployed']:.2g}",
                        f"{v['arena_used_bytes']:,}", f"{v['arena_bytes_estimate']:,}", f"{v['arena_ratio']:.3f}",
                    ]
                )  # fmt: skip
        lines += [
            f"Bundle `{b['bundle']}` (profile `{b['profile']}`, {len(b['variants'])} variants, "
            f"{b['bundle_model_bytes']:,} bytes of models):",
            "",
            *table(
                [
                    "cpu / kernels",
                    "variant",
                    "vs TFLM Python",
                    "top-1 agreement %",
                    "max diff vs reference.npz",
                    "arena used",
                    "arena estimate",
                    "used / estimate",
                ],
                rows,
            ),
            "",
            *table(
                [*FIRMWARE_SIZE_COLUMNS],
                [
                    [
                        run,
                        f"{r['flash']['total']:,}",
                        f"{r['flash']['model']:,}",
                        f"{r['model_over_bundle']:.4f}",
                        f"{r['flash']['runtime']:,}",
                        f"{r['flash']['tflm']:,}",
                        f"{r['flash']['libc']:,}",
                        f"{r['ram']['total']:,}",
                        f"{r['ram']['arena']:,}",
                        f"{r['build_s']:.1f}",
                    ]
                    for run, r in b["runs"].items()
                ],
            ),
            "",
            f"Measured on {d['cpus']} CPUs shared with other work: 1-minute load average {b['load']['before']} before "
            f"and {b['load']['after']} after this bundle's runs ({b['load']['wall_s']:.0f} s wall, "
            f"{b['load']['own_cpu_s']:.0f} CPU-seconds of its own, compilers and QEMU included).",
            "",
        ]
    rb = d["rebuild"]
    source = "built in this run" if rb["library_built_in_this_run"] else "its recorded build time added"
    of_bundle = f" of `{rb['bundle']}`" if "bundle" in rb else ""
    cmsis = (
        f"CMSIS-NN top-1 agreement {pct(d['cmsis_nn_top1'], 0)} % (max {d['cmsis_nn_max_int8_diff']} int8 steps)"
        if d["cmsis_nn_top1"] is not None
        else "CMSIS-NN not run"
    )
    lines += [
        f"{rb['cpu']} firmware{of_bundle} built twice: first {rb['first_s']:.1f} s (TFLM library {source}), second "
        f"{rb['second_s']:.1f} s, ratio {rb['second_over_first']}. Runs: {', '.join(d['runs'])}; QEMU runs the first "
        f"{d['samples_on_qemu']} reference inputs of every variant, the host all of them. Arena estimate: the "
        "build's, with TFLite Micro's bookkeeping laid out for the CPU's pointers; CMSIS-NN's scratch buffers come "
        "on top of it.",
        "",
        f"**Result.** Reference kernels bit-identical on every variant: {'yes' if d['bit_identical'] else 'NO'}; "
        f"{cmsis}; model data / bundle bytes up to {d['model_over_bundle_max']}; measured arena / estimate on the "
        f"Cortex-M4 {d['arena_ratio_min']}-{d['arena_ratio_max']} (CMSIS-NN up to {d['cmsis_nn_arena_ratio_max']}); "
        f"goals: {goal_word(d['meets_goal'])}" + ("" if len(d["runs"]) == 3 else " (not every run was made)") + ".",
    ]
    return lines


def photo_digits(d: dict) -> Lines:
    """Drawn photos of digits through ``run --input``, against a plain resize."""
    rows = [
        [r["file"], str(r["digit"]), r["drawn_as"], r["variant"], str(r["read"]), str(r["plain_resize_read"])]
        for r in d["rows"]
    ]
    policy, settings, b = d["image_policy"] or {}, d["settings"], d["build"]
    return [
        f"Bundle `{d['bundle']}` of the demo pair built on `{b['dataset']}` (at most {b['plan']['max_candidates']} "
        f"candidates, {b['tune']['epochs']} tuning epochs, selection `{b['selection']}`); image policy: invert "
        f"`{policy.get('invert')}`, object fitted in {policy.get('fit_object')} px. {settings['per_digit']} pictures "
        f"per digit, seed {settings['seed']}; `run` picks the most accurate shipped variant.",
        "",
        *table(["picture", "digit", "drawn as", "variant", "`run` reads", "plain resize reads"], rows),
        "",
        f"**Result.** `run` reads {d['correct']} of {d['images']} right ({d['accuracy']:.0%}; goal every one: "
        f"{goal_word(d['meets_goal'])}); the same variant on a plain resize to 28 x 28 reads "
        f"{d['plain_resize_correct']} ({d['plain_resize_accuracy']:.0%}).",
    ]


def family(d: dict) -> Lines:
    """A family of three anchors against the two pair builds it replaces: the anchors' line, bytes, time, K = 2."""
    s = d["settings"]
    anchors = ", ".join(
        f"`{a['id']}` {a['model']} ({a['mflops']:.2f} MFLOPs, {pct(a['test'])} %)" for a in d["anchors"]
    )
    line_rows = [
        [
            r["id"],
            f"{r['mflops']:.2f}",
            pct(r["test"]),
            r["interval"] or "outside",
            "-" if r["above_pp"] is None else f"{r['above_pp']:+.2f}",
            "yes" if r["id"] in d["line"]["shipped"] else "no",
        ]
        for r in d["line"]["stitches"]
    ]
    byte_rows = [
        [
            target,
            f"{b['model_file_bytes']:,}",
            f"{sum(b['anchors_bytes'].values()):,}",
            f"{b['adapters_stored_bytes']:,}",
            f"{b['ratio']:.4f}",
            goal_word(b["goal_met"]),
            f"{b['adapters_params']:,} / {b['ratio_params_one_byte']:.4f}",
        ]
        for target, b in d["bytes"].items()
    ]
    t = d["time"]
    time_rows = [
        [name.replace("_", " "), f"{t[name]['cpu_seconds']:.1f}", f"{t[name]['seconds']:.1f}"]
        for name in ("family", "pair_large_mid", "pair_mid_small")
    ]
    counts = ", ".join(f"{k}: {v}" for k, v in d["line"]["above_per_interval"].items())
    every = d.get("all_pairs")
    all_pairs = (
        [
            f"With `pairs: all` ({', '.join(every['pairs'])}): {every['cpu_seconds']:.1f} CPU s, "
            f"{every['cpu_over_neighbours']} x the neighbours' family; stitches above the line per interval: "
            + ", ".join(f"{k}: {v}" for k, v in every["above_per_interval"].items())
            + f"; ships {', '.join(every['shipped'])}.",
            "",
        ]
        if every
        else []
    )
    return [
        f"Anchors: {anchors}; `{s['dataset']}`, {s['tune']['epochs']} tuning epochs, at most "
        f"{s['plan']['max_candidates']} candidates per pair, {s['threads']} torch thread, phone profile.",
        "",
        "Every stitch of the family against the anchors' line (test accuracy, points):",
        "",
        *table(["stitch", "MFLOPs", "test %", "interval", "vs the line (pp)", "ships"], line_rows),
        "",
        "Bytes with every feasible variant shipped (reference: the three anchors' own models plus every adapter as "
        "the int8 file stores it, int8 weights and int32 biases; beside it, the adapters' parameter count at one "
        "byte each and the ratio to that):",
        "",
        *table(
            ["target", "model files", "anchors", "adapters", "ratio", "goal <= 1.05", "parameters / ratio"],
            byte_rows,
        ),
        "",
        *table(["build", "CPU s", "wall s"], time_rows),
        "",
        *all_pairs,
        f"**Result.** Stitches strictly above the line per interval: {counts} (goal >= 2 each: "
        f"{goal_word(d['line']['goal_met'])}). Family / the two pair builds = {t['cpu_ratio']} in CPU time "
        f"({t['wall_ratio']} wall; goal <= 0.6: {goal_word(t['goal_met'])}), every stitch's accuracy "
        f"{'the same as in its pair build' if t['same_adapters_accuracy'] else 'DIFFERENT from its pair build'}. "
        f"`models:` of two against `large` / `small`: {d['k2']['files']} files and the archive "
        f"{'byte-identical' if d['k2']['identical'] else 'DIFFERENT'}.",
    ]


def fashion(d: dict) -> Lines:
    """Two torchvision architectures trained on Fashion-MNIST, stitched and built for the phone (tflite-int8)."""
    s = d["settings"]
    donors = "; ".join(
        f"{role} {x['arch']}: {x['epochs']} epochs on {x['train_images']:,} images in {x['train_seconds']:.0f} s, "
        f"test {pct(x['test_accuracy'])} %"
        for role, x in d["donors"].items()
    )
    rows = []
    for v in d["variants"]:
        above = "-" if v["above_line_by_se"] is None else f"{v['above_line_by_se']:+.2f}"
        deployed = "-" if v["deployed_accuracy"] is None else pct(v["deployed_accuracy"], 2)
        ships = "yes" if v["shipped"] else f"no: {_short_reason(v['reasons'][0])}" if v["reasons"] else "no"
        rows.append(
            [
                v["id"],
                f"{v['flops'] / 1e6:.2f}",
                pct(v["val_accuracy"], 2),
                f"{pct(v['test_accuracy'], 2)} ± {pct(v['test_se'], 2)}",
                deployed,
                "-" if v["anchor_line"] is None else pct(v["anchor_line"], 2),
                above,
                ships,
            ]
        )
    cost_rows = [
        [
            vid,
            f"{c['size_estimated']:,}",
            f"{c['size_exported']:,}",
            f"{100 * c['size_error']:+.1f}",
            f"{c['ram_estimated']:,}",
            f"{c['ram_exported']:,}",
            f"{100 * c['ram_error']:+.1f}",
        ]
        for vid, c in d["cost_errors"].items()
    ]
    g = d["goals"]
    gaps = d["int8_gap_points"]
    worst = max(gaps.values(), key=abs)
    drops = ", ".join(f"{k} ({v})" for k, v in d["parity_drops"].items()) or "none"
    if "val" in s:  # splits.held_out: test
        split = f"test: the whole held-out file, {d['n_test']:,} images; validation: {d['n_val']:,} training images"
    else:
        split = f"splits from the held-out file: validation {d['n_val']:,}, test {d['n_test']:,} images"
    return [
        f"Fashion-MNIST from Debian's IDX files at 3 x 32 x 32; {donors}. Build: {s['tune_epochs']} tuning epochs, "
        f"at most {s['candidates']} candidates, tune.qat {s['qat']}, {s['threads']} torch threads; {split}. Build: "
        f"{d['build_seconds']:.0f} s.",
        "",
        "Every variant (accuracies in %; the anchors' line at the variant's FLOPs; how far above it in standard "
        "errors of the variant's test accuracy):",
        "",
        *table(["variant", "MFLOPs", "val", "test ± s.e.", "int8", "line", "above (s.e.)", "ships"], rows),
        "",
        "Size and RAM estimated before export against the exported file (B, error in %):",
        "",
        *table(["variant", "size est.", "size exported", "%", "RAM est.", "RAM exported", "%"], cost_rows),
        "",
        f"**Result.** Shipped stitches >= 1 s.e. above the anchors' line: "
        f"{', '.join(d['shipped_above_line_1se']) or 'none'} (goal >= 3: "
        f"{goal_word(g['three_stitches_above_line'])}); int8 against fp32 at most {100 * abs(worst):.2f} points "
        f"(goal <= 1: {goal_word(g['int8_within_1_point'])}); parity drops: {drops}; exit "
        f"{d['exit_code']}; costs within 10 %: {goal_word(g['costs_within_10_percent'])}.",
    ]
