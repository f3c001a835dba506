"""Which leaderboard differences are real: average ranks, paired Wilcoxon signed-rank tests, Holm's correction.

Agents are compared on their final regret over the seeds they share (each seed is one episode, the same
task and protocol for every agent, so the comparison is paired). The Wilcoxon signed-rank test here is
exact (zero differences dropped, tied absolute differences given their mean rank, the null distribution of
the signed-rank sum enumerated over the 2^n sign patterns by dynamic programming): no normal approximation
and no SciPy needed. Holm's step-down correction keeps the family-wise error rate at ``alpha`` over all pairs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

ALPHA = 0.05


def _midranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``a`` with tied values given their mean rank."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    s = a[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon_signed_rank(d: np.ndarray) -> tuple[float, float]:
    """The exact Wilcoxon signed-rank test of paired differences.

    Args:
        d: The paired differences (zeros are dropped).

    Returns:
        (W+, exact two-sided p); (0, 1) when no nonzero difference is left.
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0, 1.0
    r2 = np.round(2 * _midranks(np.abs(d))).astype(np.int64)  # midranks are multiples of 1/2
    w2 = int(r2[d > 0].sum())
    prob = np.zeros(int(r2.sum()) + 1)
    prob[0] = 1.0
    top = 0  # the distribution of the sum of a random subset of the ranks (each sign equally likely), kept as
    for r in np.sort(r2):  # probabilities (counts, 2^n, overflow past n ~ 1,000); in place over the support so
        top += int(r)  # far, smallest ranks first: no array allocated a rank, the short supports come first
        prob[r:top + 1] += prob[:top + 1 - r]  # numpy buffers the overlapping right-hand side
        prob[:top + 1] *= 0.5
    lower, upper = prob[:w2 + 1].sum(), prob[w2:].sum()
    return w2 / 2, float(min(1.0, 2 * min(lower, upper)))


def holm(p: list[float]) -> list[float]:
    """Holm's step-down correction.

    Args:
        p: The p-values.

    Returns:
        The Holm-adjusted p-values, in the same order.
    """
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adj[i] = running
    return adj.tolist()


def final_regrets(df: pd.DataFrame) -> pd.DataFrame:
    """The final regret of each episode (the last revealed evaluation's regret).

    Args:
        df: The harness's results, one row per evaluation (agent, seed, step, regret).

    Returns:
        Seed x agent final regrets (NaN where an agent did not run a seed).
    """
    last = df.sort_values("step").groupby(["agent", "seed"])["regret"].last()
    return last.unstack("agent")


def pairwise(final: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Paired tests of every pair of agents, Holm-corrected over all pairs.

    Args:
        final: Seed x agent final regrets (:func:`final_regrets`).
        alpha: The family-wise error rate.

    Returns:
        One row per pair: a, b, seeds shared, mean_diff (a - b), W+, p, lower (the agent both the ranks and the
        mean put lower, else ""), p_holm, significant (p_holm < alpha and a lower agent).
    """
    rows = []
    for a, b in itertools.combinations(final.columns, 2):
        both = final[[a, b]].dropna()
        d = (both[a] - both[b]).to_numpy()
        w, p = wilcoxon_signed_rank(d)
        n = int((d != 0).sum())
        # which way the test points: W+ (ranks where a's regret is higher) above its null mean n(n+1)/4 -> b
        lower = b if w > n * (n + 1) / 4 else a if w < n * (n + 1) / 4 else ""
        mean_lower = b if d.mean() > 0 else a if d.mean() < 0 else ""
        rows.append({"a": a, "b": b, "seeds": len(both), "mean_diff": float(d.mean()) if len(d) else np.nan,
                     "W+": w, "p": p, "lower": lower if lower == mean_lower else ""})
    out = pd.DataFrame(rows, columns=["a", "b", "seeds", "mean_diff", "W+", "p", "lower"])
    out["p_holm"] = holm(out["p"].tolist()) if len(out) else []
    # significant: Holm-adjusted p below alpha, and the ranks and the mean agree on which agent is lower
    out["significant"] = (out["p_holm"] < alpha) & (out["lower"] != "")
    return out


def average_ranks(final: pd.DataFrame) -> pd.Series:
    """Each agent's rank (1 = lowest regret, ties share the mean rank) averaged over the seeds every agent ran.

    Args:
        final: Seed x agent final regrets (:func:`final_regrets`).

    Returns:
        Agent -> average rank (all NaN when no seed was run by every agent).
    """
    common = final.dropna()
    if common.empty:
        return pd.Series(np.nan, index=final.columns)
    ranks = np.array([_midranks(row) for row in common.to_numpy()])
    return pd.Series(ranks.mean(axis=0), index=final.columns)


def beats(pairs: pd.DataFrame) -> dict[str, list[str]]:
    """Who beats whom.

    Args:
        pairs: The pairwise tests (:func:`pairwise`).

    Returns:
        Agent -> the agents it has significantly lower final regret than (Holm-adjusted).
    """
    out: dict[str, list[str]] = {}
    for r in pairs[pairs["significant"]].itertuples():
        out.setdefault(r.lower, []).append(r.b if r.lower == r.a else r.a)
    return out


def top_group(board: pd.DataFrame, pairs: pd.DataFrame) -> set[str]:
    """The best agent by mean final regret and every agent not significantly worse than it.

    Args:
        board: The leaderboard, best agent first (its index the agents).
        pairs: The pairwise tests (:func:`pairwise`).

    Returns:
        Those agents (empty for an empty board).
    """
    if board.empty:
        return set()
    best = board.index[0]
    worse = set(beats(pairs).get(best, []))
    return {a for a in board.index if a not in worse}
