"""How much of the runtime labels' noise is the machine's state at the time, not the seed.

The (config, fidelity) runs trained with two seeds do the same work, so their cpu_runtime should agree up to
seed effects (a diverged run aside). This script bins those pairs by how far apart in time they were trained
and prints the log std of their cpu_runtime (and wall runtime) ratio per bin; per-run noise is that / sqrt(2).

1. Pairs by time apart (and by same / different MPI rank).
2. A time-local speed factor: each task's held-out surrogate residual (grouped 5-fold, as in
   surrogate_quality.py) minus the median residual of the other tasks trained within ``--window`` minutes.
   If the noise is the machine's state, the pairs' spread and the residual spread shrink.

When a task was trained: its first epoch's ``epoch_started``; for shards from before that column existed,
the time git added the shard file (``--git``; commits land every 10-60 minutes, so this is coarse and needs
the repository's full history).

    python benchmarks/runtime_noise.py                    # data/runs/fashion_mnist, merged fresh
    python benchmarks/runtime_noise.py --run-dir data/runs/mnist --window 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BINS = (0.0, 5.0, 60.0, 600.0, np.inf)  # minutes apart


def shard_times_from_git(run_dir: Path) -> dict[str, float]:
    """task_id -> Unix time of the commit that added its shard (empty without git history)."""
    try:
        out = subprocess.run(["git", "log", "--diff-filter=A", "--format=@%ct", "--name-only", "--",
                              str((run_dir / "shards").resolve().relative_to(ROOT))],
                             capture_output=True, text=True, cwd=ROOT, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError):
        return {}
    added, t = {}, 0.0
    for line in out.splitlines():
        if line.startswith("@"):
            t = float(line[1:])
        elif line.endswith(".parquet"):
            added.setdefault(line.rsplit("/", 1)[1][: -len(".parquet")], t)
    return added


def task_times(df: pd.DataFrame, run_dir: Path, use_git: bool) -> pd.DataFrame:
    """One row per task: its last epoch's labels, ``when`` (Unix seconds) and ``when_source``."""
    last = df.sort_values("epoch").groupby("task_id").last()
    first = df.groupby("task_id")["epoch_started"].min()
    last["when"], last["when_source"] = first, np.where(first.notna(), "epoch_started", "")
    if use_git and last["when"].isna().any():
        git = shard_times_from_git(run_dir)
        fill = last["when"].isna() & last.index.isin(list(git))
        last.loc[fill, "when"] = [git[t] for t in last.index[fill]]
        last.loc[fill, "when_source"] = "git"
    return last[last["when"].notna()]


def pair_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs of finished tasks: minutes apart, same rank, log ratio of cpu_runtime and of wall runtime, and
    the difference of their speed-corrected residuals (``fixed``)."""
    from jahs_gym.fit import seed_pair_frames

    a, b = seed_pair_frames(tasks[tasks["status"] == "ok"], ["when", "rank", "cpu_runtime", "runtime", "fixed"],
                            key=("config_id", "fidelity_id"))
    return pd.DataFrame({"apart_min": (a["when"] - b["when"]).abs().to_numpy(float) / 60,
                         "same_rank": (a["rank"] == b["rank"]).to_numpy(),
                         "d": np.log(a["cpu_runtime"] / b["cpu_runtime"]).to_numpy(float),
                         "d_wall": np.log(a["runtime"] / b["runtime"]).to_numpy(float),
                         "d_fixed": (a["fixed"] - b["fixed"]).to_numpy(float)})


def speed_factor(tasks: pd.DataFrame, window_min: float) -> np.ndarray:
    """Median held-out log residual of the OTHER tasks within ``window_min`` minutes (0 where none)."""
    t, r = tasks["when"].to_numpy(), tasks["res"].to_numpy()
    order = np.argsort(t)
    out = np.zeros(len(t))
    lo = hi = 0
    for i in order:
        while t[order[lo]] < t[i] - 60 * window_min:
            lo += 1
        while hi < len(t) and t[order[hi]] <= t[i] + 60 * window_min:
            hi += 1
        near = [order[j] for j in range(lo, hi) if order[j] != i]
        out[i] = float(np.median(r[near])) if near else 0.0
    return out


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--run-dir", default=str(ROOT / "data" / "runs" / "fashion_mnist"),
                   help="a run folder with shards/ (merged fresh, so new shards count)")
    p.add_argument("--no-git", dest="git", action="store_false",
                   help="do not date shards without epoch_started by their git commit (they are then left out)")
    p.add_argument("--window", type=float, default=20.0, help="minutes either side for the speed factor in 2.")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from surrogate_quality import held_out_predictions

    from generation.merge import merge
    from jahs_gym.fit import LINEAR_FEATURES

    run_dir = Path(args.run_dir)
    df, _ = merge([run_dir])
    tasks = task_times(df, run_dir, args.git)
    src = tasks["when_source"].value_counts().to_dict()
    print(f"{len(tasks)} of {df['task_id'].nunique()} tasks dated ({src}); pairs are (config, fidelity) runs "
          "trained with two seeds")
    d, pred = held_out_predictions(df, "cpu_runtime", "log", linear=LINEAR_FEATURES)
    res = pd.Series(np.log(d["cpu_runtime"].to_numpy() / pred), index=d.index)
    tasks["res"] = res.groupby(d["task_id"]).last().reindex(tasks.index).to_numpy()  # the last epoch's
    tasks = tasks[tasks["res"].notna()]
    tasks["fixed"] = tasks["res"] - speed_factor(tasks, args.window)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
