"""How much of the runtime labels' noise is the machine's state at the time, not the seed.

The (config, fidelity) runs trained with two seeds do the same work, so their cpu_runtime should agree up to
seed effects (a diverged run aside). This script bins those pairs by how far apart in time they were trained
and prints the log std of their cpu_runtime (and wall runtime) ratio per bin; per-run noise is that / sqrt(2).

1. Pairs by time apart (and by same / different MPI rank).
2. A time-local speed factor: each task's held-out surrogate residual (grouped 5-fold, as in
   surrogate_quality.py) minus the median residual of the other configs' tasks trained within ``--window``
   minutes.
3. What that correction (the one ``fit_bundle`` applies) does to held-out quality, per timing metric.
   If the noise is the machine's state, the pairs' spread and the residual spread shrink.

When a task was trained: ``generation.fit.task_times`` (its first epoch's ``epoch_started``; for shards from
before that column existed, the time git added the shard, from the run's shard_dates.json written by
``python -m generation date-shards RUN_DIR``: coarse, commits landed every 10-60 minutes). The speed factor is
``generation.fit.speed_factors``, the correction ``fit_bundle`` applies to the runtime labels.

    python benchmarks/runtime_noise.py                    # data/runs/fashion_mnist, merged fresh
    python benchmarks/runtime_noise.py --run-dir data/runs/mnist --window 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from generation.fit import SPEED_WINDOW_MIN

ROOT = Path(__file__).resolve().parents[1]
BINS = (0.0, 5.0, 60.0, 600.0, np.inf)  # minutes apart


def task_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dated task: its last epoch's labels, ``when`` (Unix seconds) and ``when_source``."""
    from generation.fit import task_times

    last = df.sort_values("epoch").groupby("task_id").last()
    when, source = task_times(df)
    last["when"], last["when_source"] = when.reindex(last.index), source.reindex(last.index)
    return last[last["when"].notna()]


def pair_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs of finished tasks: minutes apart, same rank, log ratio of cpu_runtime and of wall runtime, and
    the difference of their speed-corrected residuals (``fixed``)."""
    from generation.fit import seed_pair_frames

    a, b = seed_pair_frames(tasks[tasks["status"] == "ok"], ["when", "rank", "cpu_runtime", "runtime", "fixed"],
                            key=("config_id", "fidelity_id"))
    return pd.DataFrame({"apart_min": (a["when"] - b["when"]).abs().to_numpy(float) / 60,
                         "same_rank": (a["rank"] == b["rank"]).to_numpy(),
                         "d": np.log(a["cpu_runtime"] / b["cpu_runtime"]).to_numpy(float),
                         "d_wall": np.log(a["runtime"] / b["runtime"]).to_numpy(float),
                         "d_fixed": (a["fixed"] - b["fixed"]).to_numpy(float)})


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--run-dir", default=str(ROOT / "data" / "runs" / "fashion_mnist"),
                   help="a run folder with shards/ (merged fresh, so new shards count)")
    p.add_argument("--window", type=float, default=SPEED_WINDOW_MIN,
                   help="minutes either side for the speed factor in 2. and 3.")
    p.add_argument("--no-fit", action="store_true", help="skip 3. (two held-out fits per timing metric)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from surrogate_quality import held_out_predictions

    from generation.fit import LINEAR_FEATURES, task_speed_factors
    from generation.merge import merge

    run_dir = Path(args.run_dir)
    df, _ = merge([run_dir])
    tasks = task_table(df)
    src = tasks["when_source"].value_counts().to_dict()
    print(f"{len(tasks)} of {df['task_id'].nunique()} tasks dated ({src}); pairs are (config, fidelity) runs "
          "trained with two seeds")
    d, pred = held_out_predictions(df, "cpu_runtime", "log", linear=LINEAR_FEATURES)
    log_res = np.log(d["cpu_runtime"].to_numpy() / pred)
    tasks["res"] = pd.Series(log_res).groupby(d["task_id"].to_numpy()).median().reindex(tasks.index).to_numpy()
    tasks = tasks[tasks["res"].notna()]
    tasks["fixed"] = tasks["res"] - task_speed_factors(d, log_res, args.window).reindex(tasks.index)
    pairs = pair_table(tasks)
    if pairs.empty:
        print("no dated seed pairs yet")
        return 0
    pairs["apart"] = pd.cut(pairs["apart_min"], BINS, include_lowest=True,
                            labels=[f"{a:g}-{b:g} min" for a, b in zip(BINS[:-1], BINS[1:])])
    print("1. log std of the cpu_runtime (and wall runtime) ratio of a seed pair, by time apart")
    for k, g in pairs.groupby("apart", observed=True):
        print(f"   {k:>14s}: {len(g):4d} pairs | cpu_runtime {g['d'].std():.3f} | runtime {g['d_wall'].std():.3f}")
    for same, g in pairs.groupby("same_rank"):
        print(f"   {'same rank' if same else 'other rank':>14s}: {len(g):4d} pairs | cpu_runtime {g['d'].std():.3f}")
    print(f"   {'all':>14s}: {len(pairs):4d} pairs | cpu_runtime {pairs['d'].std():.3f} "
          f"(per-run noise {pairs['d'].std() / np.sqrt(2):.3f})")
    print(f"2. minus a speed factor from the tasks trained within {args.window:g} min (held-out residuals)")
    print(f"   pairs' log std {pairs['d'].std():.3f} -> {pairs['d_fixed'].std():.3f}; every task's residual "
          f"std {tasks['res'].std():.3f} -> {tasks['fixed'].std():.3f}")
    if not args.no_fit:
        corrected_fit(df, args.window)
    return 0


def corrected_fit(df: pd.DataFrame, window: float) -> None:
    """3. What fit_bundle's correction does: held-out quality on the measured vs the corrected labels."""
    from surrogate_quality import held_out_predictions, speed_corrected

    from generation.fit import LINEAR_FEATURES, SPEED_METRICS, noise_ceiling, quality

    print("3. held-out quality (grouped 5-fold, one fixed model) on measured -> speed-corrected labels; the "
          "ceilings of single-run labels; fidelities whose R2 rose")
    dc, parts = speed_corrected(df, SPEED_METRICS, window)
    for m in SPEED_METRICS:
        factor, d, pred = parts[m]
        d2, pred2 = held_out_predictions(dc, m, "log", linear=LINEAR_FEATURES)
        y, y2 = d[m].to_numpy(), d2[m].to_numpy()
        q, q2 = quality(y, pred), quality(y2, pred2)
        lq, lq2 = quality(np.log(y), np.log(pred)), quality(np.log(y2), np.log(pred2))
        c, c2 = noise_ceiling(df, m, "log"), noise_ceiling(dc, m, "log")
        fid = d["fidelity_id"].to_numpy()
        rose = sum(quality(y2[fid == f], pred2[fid == f])["r2"] > quality(y[fid == f], pred[fid == f])["r2"]
                   for f in np.unique(fid))
        print(f"   {m:<11s}: R2 {q['r2']:.3f} -> {q2['r2']:.3f} | log R2 {lq['r2']:.3f} -> {lq2['r2']:.3f} | "
              f"tau {q['kendall_tau']:.3f} -> {q2['kendall_tau']:.3f} | MAE {q['mae']:.4g} -> {q2['mae']:.4g} | "
              f"ceiling R2 {c.get('r2', float('nan')):.3f} -> {c2.get('r2', float('nan')):.3f} | "
              f"{rose} of {len(np.unique(fid))} fidelities rose | factor log std {factor.std():.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
