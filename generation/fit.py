"""Fit a surrogate bundle from a learning-curve table (one row per trained epoch).

For every predicted metric: grouped K-fold by config (all epochs, seeds and fidelities of a config
in one fold) gives held-out R², Kendall tau and MAE. XGBoost hyperparameters are chosen inside each
outer training part on a grouped validation split, never on the outer test fold; the shipped model
is refitted on all rows with hyperparameters chosen the same way on the whole table.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from generation.checks import Limit
from generation.labels import (  # noqa: F401  (kendall_tau, quality, noise_model: this module's API too)
    group_mean,
    kendall_tau,
    label_index,
    noise_ceiling,
    noise_model,
    quality,
    seed_pair_frames,
)
from generation.speed import (  # noqa: F401  (this module's API too)
    SPEED_FACTORS_FILE,
    SPEED_METRICS,
    SPEED_WINDOW_MIN,
    speed_factors,
    task_speed_factors,
    task_times,
    write_speed_factors,
)
from jahs_gym.bundle import FORMAT_VERSION, file_sha256, write_manifest
from jahs_gym.metrics import BY_NAME, SURROGATE_METRICS, validate_table
from jahs_gym.protocol import Protocol
from jahs_gym.space import ENCODING, FEATURES, encode_frame
from jahs_gym.transforms import forward, inverse

# Candidate hyperparameters; `trials` of them are tried (in this order) per metric.
CANDIDATES: tuple[dict[str, Any], ...] = (
    {"max_depth": 6, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.9, "colsample_bytree": 0.9},
    {"max_depth": 8, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.8, "colsample_bytree": 0.8},
    {"max_depth": 4, "learning_rate": 0.2, "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0},
    {"max_depth": 6, "learning_rate": 0.05, "min_child_weight": 3.0, "subsample": 0.8, "colsample_bytree": 0.7},
    {"max_depth": 8, "learning_rate": 0.05, "min_child_weight": 5.0, "subsample": 0.7, "colsample_bytree": 0.8},
    {"max_depth": 5, "learning_rate": 0.15, "min_child_weight": 2.0, "subsample": 0.9, "colsample_bytree": 1.0},
)
MAX_TREES = 400
TRIALS = Limit(int, 1, len(CANDIDATES))  # fit_bundle(trials=) and `fit --trials`: one rule
FOLDS = Limit(int, 2)
# log-scale metrics (FLOPS, size, latency, runtimes) get a linear base in encoded features, fitted by least
# squares; the trees fit what it leaves (trees cannot extrapolate a proportionality). Each metric gets the base
# of these that validates best (``choose_linear``): the network's work alone, or work plus its memory traffic.
LINEAR_BASES: tuple[tuple[str, ...], ...] = (
    ("log10_arch_MMACs", "log10_arch_Mparams"),
    ("log10_arch_MMACs", "log10_arch_Mparams", "log10_arch_Melems", "arch_layers"),
)
LINEAR_FEATURES: tuple[str, ...] = LINEAR_BASES[-1]
EARLY_STOP = 30
# a validation RMSE below this share of the target's std (fit space) counts as exact: R2 loses at most its square
PARSIMONY_FLOOR = 0.01
# the smallest forest within this share of the best validation RMSE is kept (choose_params, fit_bundle)
PARSIMONY_TOLERANCE = 0.01
LABELS = ("seed_mean", "single")


def parsimony_floor(y: np.ndarray) -> float:
    """The validation RMSE that counts as exact for target ``y`` (fit space): :data:`PARSIMONY_FLOOR` of its std."""
    return PARSIMONY_FLOOR * float(np.std(y))


def parse_tolerance(spec: str) -> float | dict[str, float]:
    """A parsimony tolerance from the command line: ``"0.01"`` for every metric, or ``"cpu_runtime=0,runtime=0"``
    for those metrics (the rest keep :data:`PARSIMONY_TOLERANCE`), or both: ``"0.02,cpu_runtime=0"``."""
    default, per = None, {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"parsimony {spec!r}: {part!r} is not a number or METRIC=NUMBER") from None
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"parsimony {spec!r}: {v} must be a finite number >= 0")
        if name and name not in SURROGATE_METRICS:
            raise ValueError(f"parsimony {spec!r}: unknown metric {name!r}; allowed: {list(SURROGATE_METRICS)}")
        if name:
            per[name] = v
        else:
            default = v
    if not per:
        if default is None:
            raise ValueError(f"parsimony {spec!r} is empty; give a number or METRIC=NUMBER pairs")
        return default
    return {"*": PARSIMONY_TOLERANCE if default is None else default, **per}


def tolerance_for(tolerance: float | Mapping[str, float], metric: str) -> float:
    """The tolerance of ``metric``: a number applies to all; a mapping by metric, its ``"*"`` to the others."""
    if isinstance(tolerance, Mapping):
        return float(tolerance.get(metric, tolerance.get("*", PARSIMONY_TOLERANCE)))
    return float(tolerance)


def grouped_folds(groups: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """k arrays of row indices; every group lands in exactly one fold (groups shuffled with seed)."""
    uniq = np.unique(groups)
    if len(uniq) < k:
        raise ValueError(f"grouped {k}-fold needs at least {k} configs; the table has {len(uniq)}")
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % k))
    f = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(f == i) for i in range(k)]



def _xgb_params(params: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"objective": "reg:squarederror", "tree_method": "hist", "nthread": os.cpu_count() or 1, "seed": seed,
            "eta": params["learning_rate"], **{k: v for k, v in params.items() if k != "learning_rate"}}


def _fit_one(x: np.ndarray, y: np.ndarray, params: dict[str, Any], n_trees: int, seed: int):  # noqa: ANN202
    """An XGBoost booster with exactly ``n_trees`` trees (so every tree counts at prediction)."""
    import xgboost as xgb

    return xgb.train(_xgb_params(params, seed), xgb.DMatrix(x, label=y), num_boost_round=n_trees)


def linear_fit(x: np.ndarray, y: np.ndarray, features: tuple[str, ...] = LINEAR_FEATURES) -> list[float]:
    """[intercept, coef per feature] by least squares."""
    z = np.column_stack([np.ones(len(x)), x[:, [FEATURES.index(f) for f in features]]])
    coef, *_ = np.linalg.lstsq(z, y, rcond=None)
    return [float(c) for c in coef]


def linear_apply(x: np.ndarray, coef: list[float], features: tuple[str, ...] = LINEAR_FEATURES) -> np.ndarray:
    return coef[0] + x[:, [FEATURES.index(f) for f in features]] @ np.asarray(coef[1:])


def _validation_split(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): 20% of the configs validate; the tuning splits of ``choose_*``."""
    folds = grouped_folds(groups, 5, seed + 17)
    return np.concatenate(folds[1:]), folds[0]


def choose_linear(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int,
                  bases: tuple[tuple[str, ...], ...] = LINEAR_BASES, max_trees: int = MAX_TREES) -> tuple[str, ...]:
    """The linear base (of ``bases``) whose base + trees (first candidate) has the lowest validation RMSE."""
    import xgboost as xgb

    tr, va = _validation_split(groups, seed)
    scores = []
    for features in bases:
        coef = linear_fit(x[tr], y[tr], features)
        r_tr, r_va = y[tr] - linear_apply(x[tr], coef, features), y[va] - linear_apply(x[va], coef, features)
        res: dict = {}
        xgb.train(_xgb_params(CANDIDATES[0], seed), xgb.DMatrix(x[tr], label=r_tr), num_boost_round=max_trees,
                  evals=[(xgb.DMatrix(x[va], label=r_va), "valid")], early_stopping_rounds=EARLY_STOP,
                  verbose_eval=False, evals_result=res)
        scores.append(min(res["valid"]["rmse"]))
    return bases[int(np.argmin(scores))]


def choose_params(x: np.ndarray, y: np.ndarray, groups: np.ndarray, trials: int, seed: int,
                  max_trees: int = MAX_TREES, tolerance: float = PARSIMONY_TOLERANCE,
                  rmse_floor: float = 0.0) -> tuple[dict, int, dict]:
    """Candidate, tree count and the parsimony record, on a grouped validation split (20% of configs).

    Parsimony: of every candidate's validation curve, the smallest forest (trees x depth, the predictor's
    work) whose RMSE is within ``tolerance`` of the best RMSE any candidate reached, or at most ``rmse_floor``
    (an RMSE too small to matter: fit_bundle passes 1% of the target's std, which costs R2 at most 1e-4).
    The curves are flat near their minimum, so this takes about half the trees of the minimum for 1% of
    RMSE. The record says what the best-RMSE forest would have been: {"tolerance", "rmse_floor",
    "trees_at_best", "depth_at_best", "rmse_ratio"} (chosen forest's validation RMSE / the best).
    """
    import xgboost as xgb

    tr, va = _validation_split(groups, seed)
    dtr, dva = xgb.DMatrix(x[tr], label=y[tr]), xgb.DMatrix(x[va], label=y[va])
    curves = []
    for params in CANDIDATES[:max(1, trials)]:
        res: dict = {}
        xgb.train(_xgb_params(params, seed), dtr, num_boost_round=max_trees, evals=[(dva, "valid")],
                  early_stopping_rounds=EARLY_STOP, verbose_eval=False, evals_result=res)
        curves.append((params, np.asarray(res["valid"]["rmse"])))
    lowest = min(float(c.min()) for _, c in curves)
    limit = max(lowest * (1 + tolerance), rmse_floor) + 1e-12
    best = None
    for params, c in curves:
        hit = np.flatnonzero(c <= limit)
        if len(hit):
            n = int(hit[0]) + 1
            if best is None or n * params["max_depth"] < best[0]:
                best = (n * params["max_depth"], params, n, float(c[n - 1]))
    _, params, n, rmse = best
    p_min, c_min = min(curves, key=lambda pc: float(pc[1].min()))
    record = {"tolerance": tolerance, "rmse_floor": round(rmse_floor, 6),
              "trees_at_best": int(np.argmin(c_min)) + 1, "depth_at_best": p_min["max_depth"],
              "rmse_ratio": round(rmse / lowest, 4) if lowest > 0 else 1.0}
    return dict(params), n, record



def fit_bundle(table: Path | str, out: Path | str, folds: int = 5, trials: int = 6, seed: int = 0,
               metrics: list[str] | None = None, compute: dict | None = None, ship_table: bool = False,
               protocol: dict | None = None, progress: bool = True, max_trees: int = MAX_TREES,
               speed_window_min: float | None = SPEED_WINDOW_MIN,
               tolerance: float | Mapping[str, float] = PARSIMONY_TOLERANCE,
               optimum_rows: int = 1_000_000, labels: str = "seed_mean") -> dict:
    """Fit every metric on ``table`` and write a bundle folder ``out``; returns the manifest.

    The :data:`SPEED_METRICS` labels are first divided by a time-local speed factor (``speed_factors`` on a
    first pass of held-out predictions; ``speed_window_min=None`` fits the raw labels). Their quality is then
    reported against the corrected labels, with ``r2_raw_labels`` against the measured ones. ``tolerance``:
    every forest is the smallest within that share of the best validation RMSE (``choose_params``; 0 keeps
    the best-RMSE forests: more trees on the hot path, ``benchmarks/parsimony_tradeoff.py`` measures both); a
    mapping sets it by metric (``tolerance_for``; ``parse_tolerance`` reads the command line's form).
    ``optimum_rows``: random rows of the search for the surrogate's optimum (``generation.optimum``: JAHS-v0's
    regret reference; 0 skips it, and JAHS-v0 then refuses the bundle).

    ``labels``: "seed_mean" fits one row per (config, fidelity, epoch), the mean over its seeds in the fitted
    space (``generation.labels.seed_means``; less noise where a run has several seeds), "single" every run's
    row. Either way, held-out ``quality`` is measured against the seed-mean labels and ``quality_single_run``
    against every run (the same predictions), next to the ``ceiling`` each allows; the noise model
    (``noise_model``) stays the seeds' spread.
    """
    trials, folds = TRIALS.check("trials", trials), FOLDS.check("folds", folds)  # never capped silently
    table, out = Path(table), Path(out)
    df = pd.read_parquet(table)
    validate_table(df)
    tasks = df["task"].unique()
    if len(tasks) != 1:
        raise ValueError(f"a bundle is fitted on one task; the table holds {list(tasks)}")
    metrics = list(metrics or SURROGATE_METRICS)
    unknown = [m for m in metrics if m not in SURROGATE_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; allowed: {list(SURROGATE_METRICS)}")
    if isinstance(tolerance, Mapping):
        unknown = [m for m in tolerance if m != "*" and m not in metrics]
        if unknown:
            raise ValueError(f"tolerance names metric(s) {unknown} that are not fitted; fitted: {metrics}")
    if labels not in LABELS:
        raise ValueError(f"labels={labels!r} is not allowed; allowed: {list(LABELS)}")
    x_all = encode_frame(df)
    groups = df["config_id"].to_numpy()
    fold_idx = grouped_folds(groups, folds, seed)
    lab, first, n_seeds = label_index(df)  # rows of one (config, fidelity, epoch): one seed-mean label
    n_labels = len(first)
    if labels == "seed_mean":  # the forests learn one row per label (grouped_folds puts configs in the same folds)
        x_fit, g_fit = x_all[first], groups[first]
        fold_fit = grouped_folds(g_fit, folds, seed)
    else:
        x_fit, g_fit, fold_fit = x_all, groups, fold_idx
    out.mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    it = metrics
    if progress:
        try:
            from tqdm import tqdm
            it = tqdm(metrics, desc="fitting metrics")
        except ImportError:
            pass
    meta: dict[str, Any] = {}
    dfc = df.copy()  # the labels the surrogates fit (SPEED_METRICS corrected)
    when, dated_by = task_times(df)
    dated = {k: int(v) for k, v in dated_by[when.notna()].value_counts().items()}  # the same for every metric
    factors: dict[str, pd.Series] = {}  # metric -> log speed factor per dated task
    t0 = time.time()

    def held_out(x: np.ndarray, y: np.ndarray, ok: np.ndarray, g: np.ndarray, fidx: list[np.ndarray],
                 use_linear: bool, n_trials: int, tol: float) -> np.ndarray:
        floor = parsimony_floor(y[ok])
        pred = np.full(len(y), np.nan)
        for k in range(folds):
            te = fidx[k][ok[fidx[k]]]
            tr = np.concatenate([fidx[j] for j in range(folds) if j != k])
            tr = tr[ok[tr]]
            feats = choose_linear(x[tr], y[tr], g[tr], seed + k, max_trees=max_trees) if use_linear else ()
            lin = linear_fit(x[tr], y[tr], feats) if feats else None
            y_tr = y[tr] - linear_apply(x[tr], lin, feats) if lin else y[tr]
            params, n_trees, _ = choose_params(x[tr], y_tr, g[tr], n_trials, seed + k, max_trees, tol, floor)
            reg = _fit_one(x[tr], y_tr, params, n_trees, seed)
            pred[te] = reg.inplace_predict(x[te]) + (linear_apply(x[te], lin, feats) if lin else 0.0)
        return pred

    for m in it:
        spec = BY_NAME[m]
        tol = tolerance_for(tolerance, m)
        ok = np.isfinite(df[m].to_numpy())
        y_measured = df[m].to_numpy()
        y = forward(spec.transform, y_measured)
        use_linear = spec.transform == "log"
        speed = None
        if m in SPEED_METRICS and speed_window_min is not None and spec.transform == "log" and when.notna().any():
            # one candidate, single runs: only the medians of each task's residuals count
            first_pass = held_out(x_all, y, ok, groups, fold_idx, use_linear, 1, tol)
            factor = task_speed_factors(df, y - first_pass, speed_window_min, when)
            y = y - df["task_id"].map(factor).fillna(0.0).to_numpy()
            factors[m] = factor
            dfc[m] = inverse(spec.transform, y)
            speed = {"window_min": speed_window_min, "tasks": int(len(factor)), "dated": dated,
                     "factor_log_std": round(float(factor.std()), 4),
                     "factor_log_p5_p95": [round(float(v), 4) for v in factor.quantile([0.05, 0.95])]}
        y_label = group_mean(y, lab, n_labels)  # seed means in the fitted space
        y_fit = y_label if labels == "seed_mean" else y
        ok_fit = np.isfinite(y_fit)
        pred_fit = held_out(x_fit, y_fit, ok_fit, g_fit, fold_fit, use_linear, trials, tol)
        pred_label = pred_fit if labels == "seed_mean" else pred_fit[first]  # one x per label: one prediction
        q_mean = _physical_quality(spec, y_label, pred_label)
        q_single = _physical_quality(spec, y, pred_label[lab])
        if speed is not None:  # the same predictions against the labels as measured (machine drift left in)
            y_meas = forward(spec.transform, y_measured)
            q_mean["r2_raw_labels"] = _physical_quality(spec, group_mean(y_meas, lab, n_labels), pred_label)["r2"]
            q_single["r2_raw_labels"] = _physical_quality(spec, y_meas, pred_label[lab])["r2"]
        by_fid = {}
        if m in ("valid_acc", "cpu_runtime"):  # where the data is thin, quality is too: per-fidelity figures
            fids = df["fidelity_id"].to_numpy()[first]
            for f in sorted(set(fids)):
                sel = fids == f
                if (sel & np.isfinite(y_label) & np.isfinite(pred_label)).sum() >= 10:
                    q_f = _physical_quality(spec, y_label[sel], pred_label[sel])
                    by_fid[f] = {k: round(v, 4) for k, v in q_f.items() if k != "r2_transformed"}
        feats = choose_linear(x_fit[ok_fit], y_fit[ok_fit], g_fit[ok_fit], seed, max_trees=max_trees) \
            if use_linear else ()
        lin = linear_fit(x_fit[ok_fit], y_fit[ok_fit], feats) if feats else None
        y_ok = y_fit[ok_fit] - linear_apply(x_fit[ok_fit], lin, feats) if lin else y_fit[ok_fit]
        params, n_trees, parsimony = choose_params(x_fit[ok_fit], y_ok, g_fit[ok_fit], trials, seed, max_trees,
                                                   tol, parsimony_floor(y_fit[ok_fit]))
        reg = _fit_one(x_fit[ok_fit], y_ok, params, n_trees, seed)
        fname = f"models/{m}.ubj"
        reg.save_model(str(out / fname))
        y_raw = dfc[m].to_numpy()
        meta[m] = {"file": fname, "transform": spec.transform, "unit": spec.unit,
                   "lo": float(np.nanmin(y_raw)), "hi": float(np.nanmax(y_raw)),
                   "quality": q_mean, "quality_single_run": q_single, "params": params, "n_trees": n_trees,
                   "parsimony": parsimony, "rows": int(ok_fit.sum())}
        if lin:
            meta[m]["linear"] = {"features": list(feats), "coef": lin}
        if by_fid:
            meta[m]["quality_by_fidelity"] = by_fid
        if speed is not None:
            meta[m]["speed_correction"] = speed
        ceiling = noise_ceiling(dfc, m, spec.transform)
        if ceiling.get("sigma"):  # what the labels allow; absent for noiseless metrics (FLOPS, size)
            c_mean = noise_ceiling(dfc, m, spec.transform, seeds="table")
            meta[m]["ceiling"] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in ceiling.items()},
                                  "seed_mean": {k: round(c_mean[k], 4) for k in ("r2", "kendall_tau")}}
    protocol = _protocol_of(df, protocol)
    shipped, shipped_factors = None, None
    if ship_table:
        shutil.copyfile(table, out / "table.parquet")
        shipped = "table.parquet"
        if factors:  # lets kind="table" answer the timings as the surrogate fits them (Benchmark(timings=))
            write_speed_factors(out / SPEED_FACTORS_FILE, df["task_id"].unique(), factors)
            shipped_factors = SPEED_FACTORS_FILE
    manifest = {
        "format_version": FORMAT_VERSION,
        "task": str(tasks[0]),
        "protocol": protocol,
        "compute": compute,
        "encoding": {"name": ENCODING, "features": list(FEATURES)},
        "metrics": meta,
        "table": {"sha256": file_sha256(table), "rows": int(len(df)), "tasks": int(df["task_id"].nunique()),
                  "configs": int(df["config_id"].nunique()), "file": shipped, "speed_factors": shipped_factors,
                  **_best(df),
                  "status_counts": {k: int(v) for k, v in
                                    df.groupby("task_id")["status"].last().value_counts().items()}},
        "noise": noise_model(dfc, {m: BY_NAME[m].transform for m in metrics}),
        "noise_space": "fitted",
        "default_budget_s": default_budget(dfc),
        "fit": {"folds": folds, "trials": trials, "seed": seed, "max_trees": max_trees, "labels": labels,
                "labels_averaging_seeds": int((n_seeds > 1).sum()), "label_rows": int(n_labels),
                "seconds": round(time.time() - t0, 1),
                "protocol": "grouped K-fold by config_id; hyperparameters chosen on a grouped validation "
                            "split inside each outer training part"},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_manifest(out, manifest)
    if optimum_rows and {"test_acc", "valid_acc", "cpu_runtime"} <= set(metrics):
        from generation.optimum import optimum_record
        from jahs_gym.bundle import Bundle

        b = Bundle(out)  # the written bundle, verified: the search sees what users will query
        manifest["optimum"] = optimum_record(b.predictor(), b.max_epochs, n_random=optimum_rows, seed=seed)
        write_manifest(out, manifest)
    return manifest


def _physical_quality(spec: Any, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``quality`` of predictions ``pred`` against labels ``y`` (both in ``spec``'s fitted space) where both are
    finite, in physical units (R2 there and, for transformed metrics, ``r2_transformed`` in the fitted space)."""
    ok = np.isfinite(y) & np.isfinite(pred)
    p_raw = np.clip(inverse(spec.transform, pred[ok]), spec.lo, spec.hi)
    q = quality(inverse(spec.transform, y[ok]), p_raw)
    if spec.transform != "none":  # heavy tails (a few huge losses) dominate the raw R2; this one they do not
        q["r2_transformed"] = quality(y[ok], forward(spec.transform, p_raw))["r2"]
    return q


def _protocol_of(df: pd.DataFrame, protocol: dict | None) -> dict:
    """The run's protocol (from its plan.json), checked against the table; else what the table shows."""
    if protocol is None:
        return {"task": str(df["task"].iloc[0]), "max_epochs": int(df["epoch"].max())}
    p = Protocol.from_dict(protocol)
    if p.task != df["task"].iloc[0] or df["epoch"].max() > p.max_epochs:
        raise ValueError(f"protocol {p.as_dict()} does not match the table (task {df['task'].iloc[0]!r}, "
                         f"epochs up to {int(df['epoch'].max())})")
    return p.as_dict()


def _best(df: pd.DataFrame) -> dict[str, Any]:
    """The best test accuracy the table knows (regret is measured against it) and where it was seen."""
    ok = df[df["status"] == "ok"]
    ok = ok if len(ok) else df
    i = ok["test_acc"].idxmax()
    return {"best_test_acc": float(ok.at[i, "test_acc"]), "best_valid_acc": float(ok["valid_acc"].max()),
            "best_test_acc_at": f"{ok.at[i, 'task_id']} epoch {int(ok.at[i, 'epoch'])}"}


def default_budget(df: pd.DataFrame) -> float:
    """About 100 mid-fidelity evaluations: 100 x the median cpu_runtime at N3-W8-R0.5, half the max epochs."""
    half = max(1, int(math.ceil(df["epoch"].max() / 2)))
    mid = df[(df["fidelity_id"] == "N3-W8-R0.5") & (df["epoch"] == half)]
    if mid.empty:
        mid = df[df["epoch"] == half]
    if mid.empty:
        mid = df
    return float(100 * mid["cpu_runtime"].median())


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for p in ("jahs-gym", "xgboost", "xgboost-cpu", "numpy", "pandas", "pyarrow", "torch"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out
