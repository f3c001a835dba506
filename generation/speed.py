"""The machine's speed taken out of timing labels: each task's timings divided by a time-local speed factor.

This machine's speed drifts over hours (benchmarks/runtime_noise.py), so ``fit_bundle`` divides the timing labels
by the speed the task's neighbours in time showed; the surrogate then predicts them at the run's median speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Timings measured on the run's machine. Its speed drifts over hours (benchmarks/runtime_noise.py), so
# fit_bundle divides these labels by a time-local speed factor: the surrogate predicts them at the run's
# median machine speed.
SPEED_METRICS: tuple[str, ...] = ("cpu_runtime", "runtime", "latency")
SPEED_WINDOW_MIN = 20.0


def task_times(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """When each task started.

    The first epoch's ``epoch_started``; for tasks from before it was recorded, ``shard_committed`` (the git
    commit that added the shard: after the run, coarse) when the table has that column.

    Args:
        df: A merged table.

    Returns:
        ``(when, source)`` indexed by task_id: Unix seconds (NaN if undated), and the column that dated it.
    """
    when = df.groupby("task_id")["epoch_started"].min()
    source = pd.Series(np.where(when.notna(), "epoch_started", ""), index=when.index, dtype=object)
    if "shard_committed" in df.columns:
        committed = df.groupby("task_id")["shard_committed"].min().reindex(when.index)
        fill = when.isna() & committed.notna()
        when[fill], source[fill] = committed[fill], "shard_committed"
    return when, source


def speed_factors(when: pd.Series, residual: pd.Series, config: pd.Series,
                  window_min: float = SPEED_WINDOW_MIN) -> pd.Series:
    """Per task: the median log residual of the tasks of OTHER configs started within ``window_min`` minutes,
    centred so the median task's factor is 0. 0 where the task is undated or has no dated neighbour.

    Leaving out the task's own config keeps its own label (and its seed twin's) out of its correction.

    Args:
        when: Start times (Unix seconds) by task_id.
        residual: Held-out log residuals (log label - log prediction) by task_id.
        config: config_id by task_id.
        window_min: Minutes either side of a task.

    Returns:
        The log speed factor of every task of ``when``, by task_id.
    """
    ok = when.notna() & residual.notna()
    t, r, c = when[ok].to_numpy(float), residual[ok].to_numpy(float), config.reindex(when.index)[ok].to_numpy()
    order = np.argsort(t, kind="stable")
    t, r, c = t[order], r[order], c[order]
    lo = np.searchsorted(t, t - 60 * window_min, side="left")
    hi = np.searchsorted(t, t + 60 * window_min, side="right")
    f = np.zeros(len(t))
    for i in range(len(t)):
        near = r[lo[i]:hi[i]][c[lo[i]:hi[i]] != c[i]]
        f[i] = float(np.median(near)) if len(near) else np.nan
    has = np.isfinite(f)
    if has.any():
        f[has] -= np.median(f[has])
    out = pd.Series(0.0, index=when.index)
    out[when[ok].index[order]] = np.where(has, f, 0.0)
    return out




SPEED_FACTORS_FILE = "speed_factors.parquet"


def write_speed_factors(path: Path, task_ids: Any, factors: Mapping[str, pd.Series]) -> None:
    """Write the bundle's ``speed_factors.parquet``.

    Args:
        path: The file to write.
        task_ids: Every task of the table.
        factors: Per corrected metric, the log speed factor by task_id.
    """
    sf = pd.DataFrame({"task_id": np.asarray(task_ids)})
    for m, f in factors.items():
        sf[m] = np.exp(sf["task_id"].map(f).fillna(0.0).to_numpy(dtype=float))
    sf.to_parquet(path, index=False)


def task_speed_factors(df: pd.DataFrame, log_residual: np.ndarray,
                       window_min: float = SPEED_WINDOW_MIN, when: pd.Series | None = None) -> pd.Series:
    """The log speed factor each task's timing labels are divided by: :func:`speed_factors` of every task's
    median row residual.

    Args:
        df: The table the residuals belong to.
        log_residual: Log label - held-out log prediction, one per row of ``df``.
        window_min: Minutes either side of a task.
        when: ``task_times(df)[0]`` if the caller holds it already.

    Returns:
        The log speed factor by task_id.
    """
    if when is None:
        when, _ = task_times(df)
    res = pd.Series(log_residual).groupby(df["task_id"].to_numpy()).median()
    return speed_factors(when, res, df.groupby("task_id")["config_id"].first(), window_min)
