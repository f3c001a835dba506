"""Labels of a learning-curve table: seed pairs, the seed noise, seed-mean labels and what they allow.

A (config, fidelity) trained with several seeds gives several labels per epoch. ``seed_means`` averages them
in each metric's fitted space (``jahs_gym.transforms``: logit for accuracies, log for times), the labels
``fit`` learns from; ``noise_model`` measures the seed-to-seed spread (JAHS-v0's noise), and ``noise_ceiling``
what a perfect predictor of the seed mean scores against single-run or seed-mean labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jahs_gym.metrics import BY_NAME
from jahs_gym.transforms import check, forward, inverse

# what identifies one label: a run's (config, fidelity) at one epoch; seeds of it average into one label
LABEL_KEY: tuple[str, ...] = ("config_id", "fidelity_id", "epoch")

def kendall_tau(a: np.ndarray, b: np.ndarray, max_n: int = 4000, seed: int = 0) -> float:
    """Kendall tau-b (exact on up to ``max_n`` points; a seeded subsample beyond).

    Args:
        a: One ranking's values.
        b: The other's, same length.
        max_n: Points used at most.
        seed: Seed of the subsample.

    Returns:
        Tau-b in [-1, 1], NaN when either side is constant.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) > max_n:
        idx = np.random.default_rng(seed).choice(len(a), max_n, replace=False)
        a, b = a[idx], b[idx]
    conc = ties_a = ties_b = total = 0.0
    for i in range(0, len(a), 512):
        da = np.sign(a[i:i + 512, None] - a[None, :])
        db = np.sign(b[i:i + 512, None] - b[None, :])
        conc += float((da * db).sum())
        ties_a += float((da == 0).sum())
        ties_b += float((db == 0).sum())
        total += da.size
    n0 = total - len(a)  # ordered pairs without the diagonal
    denom = math.sqrt(max(n0 - (ties_a - len(a)), 0) * max(n0 - (ties_b - len(a)), 0))
    return conc / denom if denom > 0 else float("nan")


def quality(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """How well predictions match labels.

    Args:
        y: Labels.
        p: Predictions, same length.

    Returns:
        ``r2``, ``kendall_tau``, ``mae`` and ``n``.
    """
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"), "kendall_tau": kendall_tau(y, p),
            "mae": float(np.abs(y - p).mean()), "n": int(len(y))}


def seed_pair_frames(df: pd.DataFrame, columns: list[str],
                     key: tuple[str, ...] = ("config_id", "fidelity_id", "epoch")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows trained with two seeds, side by side.

    Args:
        df: A merged table.
        columns: The columns to pair.
        key: What identifies a row apart from its seed.

    Returns:
        ``(lowest seed's columns, highest seed's)``, both indexed by ``key``, only where every column is present
        in both (one column per seed, so a missing value never pairs a run with itself).
    """
    rep = df[df.duplicated(list(key), keep=False)]
    if rep.empty:
        empty = pd.DataFrame(columns=list(columns))
        return empty, empty
    wide = rep.set_index([*key, "seed"])[list(columns)].unstack("seed")
    seeds = sorted(wide.columns.get_level_values("seed").unique())
    lo, hi = wide.xs(seeds[0], axis=1, level="seed"), wide.xs(seeds[-1], axis=1, level="seed")
    ok = lo.notna().all(axis=1) & hi.notna().all(axis=1)
    return lo[ok], hi[ok]


def _seed_pairs(df: pd.DataFrame, metric: str, transform: str = "none") -> tuple[np.ndarray, np.ndarray, int]:
    """``metric`` (in ``transform`` space) of the rows trained with two seeds: (lowest seed's, highest seed's,
    how many (config, fidelity) runs the finite pairs come from); same config, fidelity and epoch."""
    lo, hi = seed_pair_frames(df, [metric])
    a = forward(transform, lo[metric].to_numpy(float))
    b = forward(transform, hi[metric].to_numpy(float))
    ok = np.isfinite(a) & np.isfinite(b)
    runs = int(lo.index.droplevel("epoch")[ok].nunique()) if len(lo) else 0
    return a[ok], b[ok], runs


def noise_model(df: pd.DataFrame, transforms: Mapping[str, str]) -> dict[str, float]:
    """Per-metric seed noise in the metric's fitted space (``Metric.transform``: additive for accuracies,
    multiplicative for times): std of (seed a - seed b) / sqrt(2) over repeated (config, fidelity, epoch).
    The manifest records it with ``noise_space: "fitted"``; JAHS-v0 adds it to the forest's raw outputs.

    Args:
        df: A merged table.
        transforms: Metric -> its fitted transform.

    Returns:
        Metric -> seed-noise std, for the metrics with at least one seed pair.
    """
    out = {}
    for m, transform in transforms.items():
        a, b, _ = _seed_pairs(df, m, check(transform))
        if len(a):
            out[m] = float(np.sqrt(np.mean((a - b) ** 2) / 2))
    return out


def label_index(df: pd.DataFrame, key: Sequence[str] = LABEL_KEY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows into labels: rows sharing ``key`` (a run's config, fidelity and epoch, any seed) are one label,
    numbered in order of first appearance.

    Args:
        df: A merged table.
        key: The label's columns.

    Returns:
        ``(label of every row, the first row of every label, seeds per label)``.
    """
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(df[list(key)]), sort=False)
    first = np.full(len(uniq), -1)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # the lowest row index of each label
    return codes.astype(np.int64), first, np.bincount(codes, minlength=len(uniq))


def group_mean(values: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """The mean of ``values`` per label, NaNs left out.

    Args:
        values: One value per row.
        labels: The label of every row (:func:`label_index`).
        n_labels: How many labels there are.

    Returns:
        One mean per label (NaN where a label has no finite value).
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    total = np.bincount(labels[ok], weights=v[ok], minlength=n_labels)
    count = np.bincount(labels[ok], minlength=n_labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def seed_means(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (config_id, fidelity_id, epoch): each of ``metrics`` the mean over the seeds in its fitted
    space (``BY_NAME[m].transform``: a logit mean for accuracies, a geometric mean for times), the other columns
    from the label's first row, and ``n_seeds`` (how many runs the label averages).

    Args:
        df: A merged table.
        metrics: The metrics to average.

    Returns:
        The seed-mean table.
    """
    lab, first, n = label_index(df)
    out = df.iloc[first].reset_index(drop=True)
    for m in metrics:
        t = check(BY_NAME[m].transform)
        out[m] = inverse(t, group_mean(forward(t, df[m].to_numpy(float)), lab, len(first)))
    out["n_seeds"] = n
    return out


def noise_ceiling(df: pd.DataFrame, metric: str, transform: str = "none", draws: int = 10,
                  seed: int = 0, seeds: int | str = 1) -> dict[str, float]:
    """Seed-to-seed noise of ``metric`` and the R² / tau a perfect mean predictor scores on single-run labels
    (``seeds=1``), on labels that average ``seeds`` runs each (the noise variance divided by ``seeds``), or
    with ``seeds="table"`` on the table's own seed-mean labels (``seed_means``: each label's noise variance
    divided by the seeds it averages).

    The noise, additive in the surrogate's ``transform`` space ("log": multiplicative), is estimated from
    the rows trained with two seeds (same config, fidelity and epoch; ``runs`` such pairs of runs). The
    ceiling shrinks the labels to the variance the truth has (their variance minus the noise variance they
    carry) and scores draws of truth + noise against the truth. An estimate: as good as ``runs`` allows.

    Args:
        df: A merged table.
        metric: The metric.
        transform: Its fitted transform.
        draws: Noise draws averaged.
        seed: Their seed.
        seeds: Seeds each label averages (an int), or ``"table"``.

    Returns:
        ``pairs``, ``runs`` and, with at least 5 pairs, ``sigma``, ``r2`` and ``kendall_tau``.

    Raises:
        ValueError: ``seeds`` is neither a positive int nor ``"table"``.
    """
    check(transform)
    if seeds != "table" and not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds={seeds!r}: labels average at least 1 seed (an int), or 'table'")
    a, b, runs = _seed_pairs(df, metric, transform)
    if len(a) < 5:
        return {"pairs": len(a), "runs": runs}
    sigma = float(np.sqrt(np.mean((a - b) ** 2) / 2))
    if seeds == "table":
        lab, first, n = label_index(df)
        ty = group_mean(forward(transform, df[metric].to_numpy(float)), lab, len(first))
    else:
        ty, n = forward(transform, df[metric].to_numpy(float)), np.full(len(df), seeds)
    ok = np.isfinite(ty)
    ty, noise_sd = ty[ok], sigma / np.sqrt(n[ok])
    mean, var = float(ty.mean()), float(ty.var())
    true_var = var - float(np.mean(noise_sd ** 2))
    t_true = mean + (ty - mean) * math.sqrt(max(0.0, true_var / var)) if var > 0 else ty
    truth = inverse(transform, t_true)
    rng = np.random.default_rng(seed)
    r2, tau = [], []
    for _ in range(draws):
        q = quality(inverse(transform, t_true + rng.normal(0.0, 1.0, len(ty)) * noise_sd), truth)
        r2.append(q["r2"])
        tau.append(q["kendall_tau"])
    return {"pairs": len(a), "runs": runs, "sigma": sigma, "r2": float(np.mean(r2)),
            "kendall_tau": float(np.mean(tau))}
