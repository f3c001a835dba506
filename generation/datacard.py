"""Write DATA_CARD.md next to a bundle: protocol, compute, coverage, quality, thin regions, versions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from generation.fit import PARSIMONY_FLOOR
from jahs_gym.bundle import Bundle, read_manifest
from jahs_gym.manifest import Manifest, MetricEntry
from jahs_gym.protocol import NATIVE_PX
from jahs_gym.space import all_fidelities, encode_frame, fidelity_id


def _hardware(compute: Mapping) -> str:
    """The machines the run recorded (machines.jsonl), or what is known without them."""
    machines = compute.get("machines")
    if not machines:
        return (f"not recorded by the run (runs before machines.jsonl existed); "
                f"{compute.get('threads_per_rank', '?')} torch thread per MPI rank")
    return "; ".join(f"{m['cpu']} ({m['logical_cpus']} logical CPUs), {m['ranks']} MPI ranks x "
                     f"{m['threads_per_rank']} torch thread(s)" for m in machines)


def _ceiling(meta: MetricEntry, key: str, seed_mean: bool = False) -> str:
    c = meta.ceiling
    if c and seed_mean:
        c = c.get("seed_mean")
    return f"{c[key]:.3f}" if c else "-"


def _single(meta: MetricEntry, key: str) -> str:
    q = meta.quality_single_run
    return f"{q[key]:.3f}" if q else "-"


def _label_lines(m: Manifest) -> list[str]:
    """What the forests learned from and what R2 / tau are measured against."""
    fit = m.fit
    if "labels" not in fit:  # bundles fitted before seed-mean labels: single runs throughout
        return ["Labels: every run's row (single-run labels).", ""]
    how = ("the mean over its seeds in the fitted space" if fit["labels"] == "seed_mean" else "every run's row")
    return [f"The forests learned from {fit['labels']} labels ({how}): {fit['label_rows']} (config, fidelity, epoch) "
            f"labels, {fit['labels_averaging_seeds']} of them averaging two or more seeds. R2, tau and MAE are",
            "held out and measured against the seed-mean labels; the single-run columns score the same predictions",
            "against every run's own row.", ""]


def _fit_space(meta: MetricEntry) -> str:
    r2 = meta.quality.get("r2_transformed")
    return f"{r2:.3f} ({meta.transform})" if r2 is not None else "-"


def _runs(manifest: Manifest) -> int:
    return max(((e.ceiling or {}).get("runs", 0) for e in manifest.metrics.values()), default=0)


def top_of_table(bundle: Path, df: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """How the bundle's test_acc surrogate sees the best of its table (in-sample: the final model saw these rows).

    These move with every refit, and the leaderboard's regret levels with them.

    Args:
        bundle: The bundle folder.
        df: Its merged table.
        k: How many of the best tasks to average.

    Returns:
        ``k``; ``label_best``: the table's best single run's test accuracy (information: JAHS-v0's regret is
        measured against the surrogate's optimum in the manifest); ``top_label`` and ``top_pred``: the mean label
        and prediction of the ``k`` best last-epoch tasks by label (the top labels are also the luckiest seeds, so
        even a perfect seed-mean predictor lands below them); ``pred_max``: the highest prediction for a trained
        row; ``oracle_regret``: the regret of an agent that picks the table row with the highest predicted
        valid_acc (agents pick by valid_acc).
    """
    p = Bundle(bundle).predictor(("valid_acc", "test_acc"))
    y = p.predict(encode_frame(df))
    valid, test = y[:, p.metrics.index("valid_acc")], y[:, p.metrics.index("test_acc")]
    ok = (df["status"] == "ok").to_numpy()
    ok = ok if ok.any() else np.ones(len(df), dtype=bool)  # as fit's best_test_acc: every row when none is ok
    man = read_manifest(bundle, verify_files=False)
    label_best = man.table.best_test_acc  # the table's best single run (information)
    ref = man.optimum.get("test_acc", {}).get("value", label_best)  # what regret is measured against
    last = np.flatnonzero(ok & (df["epoch"] == df["epoch"].max()).to_numpy())
    top = last[np.argsort(-df["test_acc"].to_numpy()[last], kind="stable")[:k]]
    pick = np.flatnonzero(ok)[np.argmax(valid[ok])]
    return {"k": int(len(top)), "label_best": label_best, "top_label": float(df["test_acc"].to_numpy()[top].mean()),
            "top_pred": float(test[top].mean()), "pred_max": float(test[ok].max()),
            "oracle_regret": ref - float(test[pick])}


def _optimum_lines(m: Any) -> list[str]:
    """The regret reference: the surrogate's optimum and how it was found."""
    opt = m.optimum
    if not opt.get("test_acc"):
        return []
    t, v = opt["test_acc"], opt["valid_acc"]

    def at(e: Any) -> str:
        f = e["fidelity"]
        return f"N{f['N']}-W{f['W']}-R{f['Resolution']} epoch {f['epoch']}"

    return ["## Regret reference: the surrogate's optimum", "",
            f"JAHS-v0's regret is the highest test accuracy this surrogate predicts anywhere an env can ask, "
            f"{t['value']:.2f}% (at {at(t)}; {t['random_best']:.2f}% after the random phase; the two "
            f"independent searches: {', '.join(f'{v:.3f}' for v in t.get('searches', [t['value']]))}%), minus the "
            "incumbent's noise-free test accuracy: >= 0 unless an optimiser beats the search. Predictions are "
            "bounded by what a metric can be (0-100 %), never by the table's range. The search: " + opt["method"]
            + ".", "",
            f"The best validation accuracy it predicts is {v['value']:.2f}% (at {at(v)}), where it predicts "
            f"{v['test_acc']:.2f}% test accuracy; at the test optimum it predicts {t['valid_acc']:.2f}% validation "
            "accuracy. The test and valid forests are fitted apart, and far from the data their sums extrapolate "
            "apart: an agent that selects by validation accuracy would not pick the test optimum, so every "
            f"agent's regret includes a floor of about {t['value'] - v['test_acc']:.1f} points. Orderings are "
            "not affected; regret levels are comparable within one bundle only.", "",
            f"One full-fidelity evaluation (N5-W16-R1, {m.protocol.max_epochs} epochs) costs "
            f"{opt['full_fidelity_cost_s']:.1f} simulated s on average over random configs: the unit of the "
            "JAHS-Bench-201 evaluation protocol (`python -m agents.bench --protocol jahs`: 100 of them).", ""]


def _validity_lines(bundle: Path) -> list[str]:
    """The headline validity figure: benchmarks/surrogate_validity.py's agent orderings (validity.json)."""
    path = Path(bundle) / "validity.json"
    if not path.exists():
        return []
    out = ["## Validity: do optimisers rank the same on the surrogate as on the real runs?", "",
           "`python benchmarks/surrogate_validity.py --task TASK --seeds 30 [--noise] --write-card`: the harness's "
           "agents (arm-space versions) on JAHS-v0 with `backend=\"table\"` (the table's trained runs, measured) "
           "and `backend=\"surrogate_arms\"` (the same runs, predicted by this surrogate), same seeds and budget. "
           "Kendall tau between the two agent orderings by mean final regret (1: the same order); the mean "
           "absolute difference of the agents' mean final regret; of the agent pairs the table's Wilcoxon tests "
           "(Holm) separate, how many the surrogate separates the same way.", "",
           "| labels | seeds | tau | mean abs. difference (points) | significant pairs kept | surrogate-only pairs | "
           "table ordering | surrogate ordering |", "|---|---|---|---|---|---|---|---|"]
    for key, r in json.loads(path.read_text()).items():
        o = r["orderings"]
        what = "one real seed per run (noise on)" if key == "noise" else "seed means (noise off)"
        out.append(f"| {what} | {r['seeds']} | {r['kendall_tau']:.2f} | {r['mean_abs_diff']:.2f} | "
                   f"{r['kept_by_surrogate']} of {r['table_significant_pairs']} | "
                   f"{len(r['surrogate_only_significant_pairs'])} | {' < '.join(o['table'])} | "
                   f"{' < '.join(o['surrogate_arms'])} |")
    return [*out, ""]


def _stability_lines(bundle: Path) -> list[str]:
    """What benchmarks/leaderboard_stability.py found (stability.json), per protocol."""
    path = Path(bundle) / "stability.json"
    if not path.exists():
        return []
    out = ["## Leaderboard stability", "",
           "`python benchmarks/leaderboard_stability.py --task TASK --protocols default,jahs --write-card`: the "
           "harness on two disjoint seed sets, and on a surrogate refitted on a bootstrap resample of the table's "
           "configs; Kendall tau between the agent orderings by mean final regret (1: the same order).", "",
           "| protocol | seeds | tau, disjoint seeds | tau, bootstrap refit | ordering | ordering after the refit |",
           "|---|---|---|---|---|---|"]
    notes = []
    for proto, r in json.loads(path.read_text()).items():
        o = r["orderings"]
        out.append(f"| {proto} | {r['seeds']} | {r['tau_disjoint_seeds']:.2f} | {r['tau_bootstrap_refit']:.2f} | "
                   f"{' < '.join(o['seeds'])} | {' < '.join(o['bootstrap_refit'])} |")
        seeds = f"on other seeds {_order_change(o['seeds'], o['other_seeds'])}; " if "other_seeds" in o else ""
        notes.append(f"- {proto} protocol: {seeds}after the refit {_order_change(o['seeds'], o['bootstrap_refit'])}.")
    out += ["", *notes, "", "Where an ordering changed, read those places of the leaderboard as a property of this fit "
            "and these seeds (its significance marks say which places are distinguishable at all), not of the "
            "task.", ""]
    return out


def _order_change(before: list[str], after: list[str]) -> str:
    """How an agent ordering changed: "the same order", or the first place and every agent that moved."""
    if before == after:
        return "the same order"
    if set(before) != set(after):
        return f"other agents ({' < '.join(after)})"
    moved = [f"{a} {i + 1} -> {after.index(a) + 1}" for i, a in enumerate(before)
             if a in after and after.index(a) != i]
    first = ("first place held" if before[0] == after[0] else
             f"THE FIRST PLACE CHANGED ({before[0]} -> {after[0]})")
    return f"{first}, places changed ({', '.join(moved)})"


def write_datacard(bundle: Path, table: Path, plan_tasks: int | None = None) -> Path:
    """Write the bundle's ``DATA_CARD.md`` from its manifest and table.

    Args:
        bundle: The bundle folder (``fit`` wrote it).
        table: The merged table it was fitted on.
        plan_tasks: How many tasks the plan held (the card says how many of them were trained).

    Returns:
        The card's path.
    """
    m = read_manifest(bundle, verify_files=False)
    df = pd.read_parquet(table)
    p = m.protocol.raw
    first = df[df["seed"] == 0].drop_duplicates("task_id")
    per_fid = first.groupby("fidelity_id").size()
    counts = {fidelity_id(*f): int(per_fid.get(fidelity_id(*f), 0)) for f in all_fidelities()}
    thin = [f for f, c in counts.items() if c < 20]
    last = df.sort_values("epoch").groupby("task_id").tail(1)
    status = last["status"].value_counts().to_dict()
    c = m.to_json().get("compute") or {}  # plain lists, as the card prints them
    lines = [
        f"# Data card: {m.task}", "",
        "Trained by jahs-gym's own pipeline (`python -m generation run`); nothing here is synthetic.", "",
        "## Protocol", "",
        f"* images: {p.get('n_train')} training (stratified subset of the official training split), "
        f"{p.get('n_valid')} validation (carved from the training split), {p.get('n_test')} test "
        f"(stratified subset of the official test split); split seed {p.get('split_seed')}",
        f"* epochs: {p.get('max_epochs')} (cosine schedule over {p.get('max_epochs')} epochs), "
        f"batch {p.get('batch_size')}, SGD momentum 0.9 Nesterov, random crop + flip, TrivialAugmentWide when the "
        "config asks",
        f"* resolution: 0.25, 0.5, 1.0 of {NATIVE_PX.get(m.task, 32)} px", "",
        "## Compute and data", "",
        f"* trained tasks: {m.table.tasks} ({m.table.configs} configs, {m.table.rows} epoch rows)"
        + (f" of {plan_tasks} planned" if plan_tasks else ""),
        f"* status of the tasks: {json.dumps(status)}",
        f"* core-hours: {c.get('core_hours', '?')} wall, {c.get('cpu_core_hours', '?')} CPU (sums over tasks of "
        "training + evaluation seconds)",
        f"* hardware (as the runs recorded it when they started): {_hardware(c)}",
        f"* hosts: {c.get('hosts', '?')}; torch {c.get('torch', '?')}; fitted with {json.dumps(dict(m.versions))}", "",
        "## Coverage: configs per (N, W, Resolution), first seeds", "",
        "| fidelity | configs |", "|---|---|",
        *[f"| {f} | {n} |" for f, n in counts.items()], "",
        f"Thinly covered (< 20 configs): {', '.join(thin) if thin else 'none'}.", "",
        *_validity_lines(bundle),
        f"## Held-out quality (grouped {m.fit['folds']}-fold by config)", "",
        *_label_lines(m),
        "The ceiling is what a perfect predictor of the seed mean would score against those labels, given the",
        "seed-to-seed noise measured on the (config, fidelity) runs trained with two seeds "
        f"({_runs(m)} of them so far: an estimate).", "",
        "For the runtimes the ceiling is optimistic: they drift with the machine's state over hours, and most",
        "seed pairs ran minutes apart (`python benchmarks/runtime_noise.py` measures the spread by time apart).",
        "Where a metric's labels were corrected for that drift (next section), its R2, tau, MAE and ceiling are",
        "against the corrected labels.", "",
        "R2 (fit space) is the R2 of the fitted transform of the metric (log, log1p), where a handful of",
        "huge values (epoch-1 losses at high learning rates) weigh no more than the rest.", "",
        "| metric | R2 | R2 (fit space) | Kendall tau | MAE | ceiling R2 | ceiling tau | single runs: R2 | tau | "
        "ceiling R2 | ceiling tau | trees |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {k} | {v.quality['r2']:.3f} | {_fit_space(v)} | {v.quality['kendall_tau']:.3f} | "
          f"{v.quality['mae']:.4g} | {_ceiling(v, 'r2', True)} | {_ceiling(v, 'kendall_tau', True)} | "
          f"{_single(v, 'r2')} | {_single(v, 'kendall_tau')} | {_ceiling(v, 'r2')} | {_ceiling(v, 'kendall_tau')} | "
          f"{v.n_trees} |" for k, v in m.metrics.items()],
        "",
    ]
    for metric in ("valid_acc", "cpu_runtime"):
        byf = m.metrics[metric].quality_by_fidelity if metric in m.metrics else None
        if byf:
            lines += [f"### {metric} per fidelity", "", "| fidelity | rows | R2 | tau |", "|---|---|---|---|",
                      *[f"| {f} | {q['n']} | {q['r2']:.3f} | {q['kendall_tau']:.3f} |" for f, q in byf.items()], ""]
    speed = {k: v.speed_correction for k, v in m.metrics.items() if v.speed_correction is not None}
    if speed:
        sc = next(iter(speed.values()))
        lines += ["## Runtime labels: the machine's speed taken out", "",
                  "This machine's speed drifts over hours, and a timing label carries that drift. Each task's",
                  "timings are divided by a speed factor: the median held-out residual (measured / predicted, a",
                  f"first fit) of the other configs' tasks started within {sc['window_min']:g} min of it, centred on",
                  "the median task. The surrogates predict these metrics at the run's median machine speed.",
                  f"Tasks dated: {json.dumps(dict(sc['dated']))} (shard_committed: the git commit that added the "
                  "shard,",
                  "for shards from before epoch_started was recorded: coarse).",
                  *(["The factors ship in speed_factors.parquet: Benchmark(kind='table', timings='corrected')",
                     "answers the table's timings divided by them."] if m.table.speed_factors else []),
                  "",
                  "| metric | factor log std | factor 5%-95% | R2 vs corrected | R2 vs measured labels |",
                  "|---|---|---|---|---|",
                  *[f"| {k} | {sc['factor_log_std']:.3f} | "
                    f"x{math.exp(sc['factor_log_p5_p95'][0]):.2f}-"
                    f"x{math.exp(sc['factor_log_p5_p95'][1]):.2f} | {m.metrics[k].quality['r2']:.3f} | "
                    f"{m.metrics[k].quality['r2_raw_labels']:.3f} |" for k, sc in speed.items()], ""]
    if {"valid_acc", "test_acc"} <= set(m.metrics):
        t = top_of_table(bundle, df)
        lines += _optimum_lines(m)
        lines += ["## The top of the table, as the surrogate sees it", "",
                  f"The table's best single run scored {t['label_best']:.2f}% test accuracy (information: a "
                  f"maximum of noisy runs, biased upwards, not the regret reference). The {t['k']} best last-epoch "
                  f"tasks by label average {t['top_label']:.2f}%; the test_acc surrogate predicts "
                  f"{t['top_pred']:.2f}% for them (in-sample; the best labels are also the luckiest seeds). Its "
                  f"highest prediction for any trained row is {t['pred_max']:.2f}%, and the row it rates best by "
                  f"valid_acc would leave an agent that picks it a regret of {t['oracle_regret']:.2f} points. "
                  "These move with each refit, and so do the leaderboard's regrets: compare agents within one "
                  "bundle.", ""]
    pars = [(v.n_trees, v.parsimony) for v in m.metrics.values() if v.parsimony is not None]
    if pars:
        tols = {k: v.parsimony["tolerance"] for k, v in m.metrics.items() if v.parsimony is not None}
        common = max(set(tols.values()), key=list(tols.values()).count)
        others = ", ".join(f"{k} {t:.0%}" for k, t in tols.items() if t != common)
        lines += ["## Forest size", "", f"Each metric keeps the smallest forest within {common:.0%}"
                  + (f" ({others})" if others else "") + " "
                  f"of the best validation RMSE, or with an RMSE under {PARSIMONY_FLOOR:.0%} of the target's std "
                  f"(too small to matter): {sum(n for n, _ in pars)} trees in all; the best-RMSE forests would "
                  f"have {sum(p['trees_at_best'] for _, p in pars)}.", ""]
    lines += _stability_lines(bundle)
    space = ("in the surrogate's fitted space: points for accuracies, log units for times and sizes, log1p for "
             "losses" if m.noise_space == "fitted" else "in metric units")
    lines += ["## Noise", "", f"Seed noise (std of one run, from repeated seeds; {space}): "
              + (", ".join(f"{k} {v:.3g}" for k, v in m.noise.items()) or "no repeated seeds yet"), ""]
    out = bundle / "DATA_CARD.md"
    out.write_text("\n".join(lines))
    return out
