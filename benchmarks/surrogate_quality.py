"""How good the surrogates are, how good they could be, and how that grows with data.

1. Noise ceiling: from the configs trained with two seeds, the seed-to-seed noise of each metric, and the
   R² and Kendall tau that a perfect predictor of the mean would score against single-run labels. Then the
   surrogate itself on those rows, scored against one seed's label and against the two seeds' mean.
2. Linear base ablation: held-out cpu_runtime and latency quality with each of ``generation.fit.LINEAR_BASES``
   (MACs and parameters only, encoding v2's, or all of ``LINEAR_FEATURES``); and valid_acc
   with and without the cell's path features (n_paths .. param_free_path, encoding v4), on 3 fold seeds.
3. Growth: for each share of the table's configs (grouped 5-fold by config, fixed XGBoost settings) it prints
   valid_acc R² and Kendall tau and runtime R², then fits quality ~ a - b * n**-c on the points and says
   how many configs the goals (valid_acc tau 0.9, R² 0.95; cpu_runtime R² 0.98) would need, if the trend holds;
   for a goal above the noise ceiling, how many seeds per run the labels would have to average instead.
4. The goals, 5. where cpu_runtime's squared error sits: its R² in log space, the share of the squared error
   in the top 1% of rows and the fidelities that hold most of it (the raw-scale R² is the expensive corner's).

    python benchmarks/surrogate_quality.py                    # the shipped fashion_mnist table
    python benchmarks/surrogate_quality.py --table T.parquet

The runtimes (cpu_runtime, runtime, latency) are scored against speed-corrected labels, the ones the shipped
bundle fits (``generation.fit.fit_bundle``: the machine's drift over hours taken out); ``--raw-runtimes``
scores the measured labels.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

# (label, column of a growth row, goal, metric, quality key)
GOALS = (("valid_acc R2", 1, 0.95, "valid_acc", "r2"), ("valid_acc tau", 2, 0.9, "valid_acc", "kendall_tau"),
         ("cpu_runtime R2", 3, 0.98, "cpu_runtime", "r2"))


def held_out(df: pd.DataFrame, metric: str, transform: str, seed: int = 0,
             linear: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> dict[str, float]:
    """Grouped 5-fold quality with fixed XGBoost settings (and a least-squares base on ``linear`` features).

    ``drop``: encoded features the trees do not see (an ablation).
    """
    from generation.fit import quality

    d, pred = held_out_predictions(df, metric, transform, seed, linear, drop)
    return quality(d[metric].to_numpy(), pred)


def held_out_predictions(df: pd.DataFrame, metric: str, transform: str, seed: int = 0, linear: tuple[str, ...] = (),
                         drop: tuple[str, ...] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """(the rows where ``metric`` is finite, their grouped 5-fold held-out predictions); see ``held_out``."""
    import xgboost as xgb

    from generation.fit import grouped_folds, linear_apply, linear_fit
    from jahs_gym.space import FEATURES, encode_frame
    from jahs_gym.transforms import forward, inverse

    d = df[np.isfinite(df[metric])]
    x, y = encode_frame(d), forward(transform, d[metric].to_numpy())
    if drop:
        x = x.copy()
        x[:, [FEATURES.index(f) for f in drop]] = 0.0  # a constant column: never split on
    pred = np.empty(len(d))
    params = {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 6, "eta": 0.1,
              "subsample": 0.9, "colsample_bytree": 0.9, "seed": seed, "nthread": 2}
    for te in grouped_folds(d["config_id"].to_numpy(), 5, seed):
        tr = np.setdiff1d(np.arange(len(d)), te)
        base_tr, base_te = np.zeros(len(tr)), np.zeros(len(te))
        if linear:
            coef = linear_fit(x[tr], y[tr], linear)
            base_tr, base_te = linear_apply(x[tr], coef, linear), linear_apply(x[te], coef, linear)
        bst = xgb.train(params, xgb.DMatrix(x[tr], label=y[tr] - base_tr), num_boost_round=200)
        pred[te] = bst.inplace_predict(x[te]) + base_te
    return d, inverse(transform, pred)


def speed_corrected(df: pd.DataFrame, metrics: tuple[str, ...] | None = None,
                    window: float | None = None) -> tuple[pd.DataFrame, dict[str, tuple]]:
    """``df`` with the timing ``metrics`` divided by fit_bundle's speed factors (the machine's drift taken out),
    from held-out predictions of the fixed model; and per metric (factor per task, rows, held-out predictions
    on the measured labels)."""
    from generation.fit import LINEAR_FEATURES, SPEED_METRICS, SPEED_WINDOW_MIN, task_speed_factors

    out, parts = df.copy(), {}
    for m in metrics or SPEED_METRICS:
        d, pred = held_out_predictions(df, m, "log", linear=LINEAR_FEATURES)
        factor = task_speed_factors(d, np.log(d[m].to_numpy() / pred), window or SPEED_WINDOW_MIN)
        out[m] = df[m] * np.exp(-df["task_id"].map(factor).fillna(0.0))
        parts[m] = (factor, d, pred)
    return out, parts


def against_seed_mean(df: pd.DataFrame, metric: str, transform: str, linear: tuple[str, ...] = ()) -> dict:
    """On the rows trained with two seeds: held-out quality against one seed's label and against their mean.

    Single-run labels carry the seed noise; the mean of two carries half its variance. A surrogate that
    predicts the mean well scores clearly higher against the mean than against either run.
    """
    from generation.fit import quality, seed_pair_frames

    d, pred = held_out_predictions(df, metric, transform, linear=linear)
    lo, hi = seed_pair_frames(d.assign(pred=pred), [metric, "pred"])
    if len(lo) < 5:
        return {}
    p = lo["pred"].to_numpy()
    return {"rows": len(lo), "single": quality(lo[metric].to_numpy(), p),
            "mean": quality(((lo[metric] + hi[metric]) / 2).to_numpy(), p)}


SEED_COUNTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # labels averaging this many seeds, tried in turn


def seeds_needed(df: pd.DataFrame, metric: str, key: str, goal: float) -> int | None:
    """The fewest seeds per (config, fidelity) (of ``SEED_COUNTS``) whose averaged labels have a noise ceiling
    >= ``goal``; None if even the most do not."""
    from generation.fit import noise_ceiling
    from jahs_gym.metrics import BY_NAME

    for k in SEED_COUNTS:
        if noise_ceiling(df, metric, BY_NAME[metric].transform, seeds=k).get(key, 1.0) >= goal:
            return k
    return None


def needed(ns: np.ndarray, q: np.ndarray, goal: float) -> float:
    """n where a - b * n**-c reaches goal (grid-searched c, least squares a, b); inf if never."""
    best = None
    for c in np.linspace(0.1, 2.0, 39):
        a_mat = np.column_stack([np.ones_like(ns), -(ns ** -c)])
        coef, res, *_ = np.linalg.lstsq(a_mat, q, rcond=None)
        err = float(np.sum((a_mat @ coef - q) ** 2))
        if best is None or err < best[0]:
            best = (err, coef, c)
    _, (a, b), c = best
    if a <= goal or b <= 0:
        return float("inf")
    return float((b / (a - goal)) ** (1 / c))


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--table", default=None, help="a merged table (default: the shipped fashion_mnist table)")
    p.add_argument("--shares", default="0.25,0.5,0.75,1.0", help="shares of the configs to fit on")
    p.add_argument("--raw-runtimes", action="store_true",
                   help="score the runtimes against the measured labels, not the speed-corrected ones the shipped "
                        "bundle fits (generation.fit.SPEED_METRICS; benchmarks/runtime_noise.py compares the two)")
    p.add_argument("--plot", default=None, help="also draw the growth, ceilings and goals into this PNG "
                                                "(needs matplotlib), e.g. docs/surrogate_quality_fashion_mnist.png")
    args = p.parse_args(argv)
    from jahs_gym.bundle import DATA_DIR

    df = pd.read_parquet(args.table or DATA_DIR / "fashion_mnist" / "table.parquet")
    if "cpu_runtime" not in df.columns:
        raise SystemExit("the table predates cpu_runtime; merge it again with `python -m generation merge`")
    from generation.fit import LINEAR_BASES, LINEAR_FEATURES, noise_ceiling, quality
    from jahs_gym.metrics import BY_NAME

    print(f"table: {df['task_id'].nunique()} tasks, {df['config_id'].nunique()} configs, {len(df)} rows")
    if not args.raw_runtimes:
        df, _ = speed_corrected(df, ("cpu_runtime", "runtime", "latency"))
        print("runtimes: speed-corrected labels, as the shipped bundle fits them (--raw-runtimes: as measured)")
    print("1. noise ceiling (a perfect predictor of the seed mean, scored on single-run labels)")
    ceilings = {}
    for metric in ("valid_acc", "test_acc", "cpu_runtime", "runtime"):
        log = BY_NAME[metric].transform == "log"
        c = ceilings[metric] = noise_ceiling(df, metric, BY_NAME[metric].transform)
        if "sigma" not in c:
            print(f"   {metric}: only {c['pairs']} repeated rows; no estimate")
            continue
        unit = "x (log std)" if log else " points"
        print(f"   {metric:12s} seed noise {c['sigma']:.3f}{unit} from {c['pairs']} row pairs: "
              f"ceiling R2 {c['r2']:.3f} tau {c['kendall_tau']:.3f}")
    print("   the surrogate on the rows trained twice (grouped 5-fold): scored on one seed vs the two seeds' mean")
    for metric in ("valid_acc", "cpu_runtime"):
        log = BY_NAME[metric].transform == "log"
        a = against_seed_mean(df, metric, BY_NAME[metric].transform, LINEAR_FEATURES if log else ())
        if a:
            one, two = a["single"], a["mean"]
            print(f"   {metric:12s} {a['rows']} rows: one seed R2 {one['r2']:.3f} tau {one['kendall_tau']:.3f} | "
                  f"mean R2 {two['r2']:.3f} tau {two['kendall_tau']:.3f}")
    print("2. linear base of log metrics (grouped 5-fold, whole table)")
    for metric in ("cpu_runtime", "latency"):
        for feats in LINEAR_BASES:  # the bases fit_bundle chooses among
            name = "MACs + params" if len(feats) == 2 else "all"
            q = held_out(df, metric, "log", linear=feats)
            print(f"   {metric:12s} base on {name:13s}: R2 {q['r2']:.3f} tau {q['kendall_tau']:.3f}")
    paths = ("n_paths", "path_max_convs", "path_min_convs", "param_free_path")
    for seed in (0, 1, 2):
        without, with_ = (held_out(df, "valid_acc", BY_NAME["valid_acc"].transform, seed, drop=paths),
                          held_out(df, "valid_acc", BY_NAME["valid_acc"].transform, seed))
        print(f"   valid_acc    folds seed {seed}: without path features R2 {without['r2']:.3f} tau "
              f"{without['kendall_tau']:.3f} | with R2 {with_['r2']:.3f} tau {with_['kendall_tau']:.3f}")
    print("3. growth with the number of configs")
    configs = df["config_id"].unique()
    rng = np.random.default_rng(0)
    order = rng.permutation(configs)
    rows = []
    for share in map(float, args.shares.split(",")):
        keep = set(order[: max(10, int(round(share * len(configs))))])
        sub = df[df["config_id"].isin(keep)]
        va = held_out(sub, "valid_acc", BY_NAME["valid_acc"].transform)
        rt = held_out(sub, "cpu_runtime", "log", linear=LINEAR_FEATURES)
        rows.append((len(keep), va["r2"], va["kendall_tau"], rt["r2"]))
        print(f"{len(keep):5d} configs: valid_acc R2 {va['r2']:.3f} tau {va['kendall_tau']:.3f} | "
              f"cpu_runtime R2 {rt['r2']:.3f}")
    ns = np.array([r[0] for r in rows], float)
    print("4. the goals")
    for name, col, goal, metric, key in GOALS:
        q = np.array([r[col] for r in rows])
        ceiling = ceilings[metric].get(key)
        n = needed(ns, q, goal) if len(rows) >= 3 else float("inf")
        if q[-1] >= goal:
            verdict = f"met on all {ns[-1]:,.0f} configs"
        elif ceiling is not None and goal > ceiling:
            k = seeds_needed(df, metric, key, goal)
            verdict = (f"above the noise ceiling {ceiling:.3f} of single-run labels: more configs alone cannot reach "
                       "it; " + (f"labels averaging {k} seeds would lift the ceiling to it" if k else
                                 f"not even labels averaging {SEED_COUNTS[-1]} seeds would lift the ceiling to it"))
        elif not np.isfinite(n) or n > 100 * ns[-1]:
            verdict = "not within 100x the current configs by the fitted trend"
        elif n <= ns[-1] and q[-1] < goal:  # a non-monotone curve: the trend says "already", the data says no
            verdict = (f"the fitted trend passes it at ~{n:,.0f} configs, yet all {ns[-1]:,.0f} score "
                       f"{q[-1]:.3f}: the curve is not monotone, so no config count can be read off it")
        else:
            verdict = f"~{n:,.0f} configs if the trend holds"
        print(f"   {name} {goal} (now {q[-1]:.3f}): {verdict}")
    print("5. where cpu_runtime's squared error sits (grouped 5-fold, fixed model)")
    d, pred = held_out_predictions(df, "cpu_runtime", "log", linear=LINEAR_FEATURES)
    y = d["cpu_runtime"].to_numpy()
    err2 = pd.Series((y - pred) ** 2, index=d.index)
    by_fid = err2.groupby(d["fidelity_id"]).sum().sort_values(ascending=False) / err2.sum()
    print(f"   R2 {quality(y, pred)['r2']:.3f}, in log space {quality(np.log(y), np.log(pred))['r2']:.3f}; the top 1% "
          f"of rows hold {err2.nlargest(max(1, len(err2) // 100)).sum() / err2.sum():.0%} of the squared error; by "
          "fidelity: " + ", ".join(f"{f} {v:.0%}" for f, v in by_fid.head(3).items()))
    if args.plot:
        plot(ns, rows, ceilings, args.plot, f"{df['task'].iloc[0]}: {df['task_id'].nunique()} trained tasks")
    return 0


def plot(ns: np.ndarray, rows: list[tuple], ceilings: dict, path: str, title: str) -> None:
    """Held-out quality against configs (solid), noise ceilings (dashed) and goals (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (label, col, goal, metric, key), color in zip(GOALS, ("C0", "C1", "C2")):
        ax.plot(ns, [r[col] for r in rows], "o-", color=color, label=label)
        ceiling = ceilings[metric].get(key)
        if ceiling is not None:
            ax.axhline(ceiling, color=color, ls="--", lw=1)
        ax.axhline(goal, color=color, ls=":", lw=1)
    ax.set_xlabel("configs in the table (grouped 5-fold by config)")
    ax.set_ylabel("held-out quality")
    ax.set_title(f"{title}\ndashed: noise ceiling of single-run labels; dotted: goal", fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
