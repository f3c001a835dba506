"""The harness's anytime plot: the incumbent's test regret (and validation error) against cost, mean and standard
error over seeds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def anytime(df: pd.DataFrame, budget: float, points: int = 200, column: str = "regret",
            unit: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """agent -> (cost grid / ``unit``, mean, standard error over seeds) of ``column`` (the incumbent's test regret,
    or its validation error) at each cost.

    A curve starts where every seed has its first evaluation, so a mean never mixes seeds in and out.

    Args:
        df: The harness's results, one row per evaluation.
        budget: The last cost of the grid (simulated seconds).
        points: Points of the log-spaced cost grid.
        column: ``"regret"`` (or another results column), or ``"valid_error"`` (100 - incumbent_valid_acc).
        unit: The cost grid is divided by it.

    Returns:
        Agent -> (cost grid, mean, standard error); NaN before every seed has an incumbent (SE also with one seed).
    """
    found = df[df["step"] > 0]  # an episode that found nothing has one row at cost 0: no data to resolve there
    lo = max(float((found if len(found) else df)["cumulative_cost"].min()), budget * 1e-4)
    grid = np.geomspace(lo, budget, points)
    out = {}
    for agent, sub in df.groupby("agent"):
        curves = []
        for _, ep in sub.groupby("seed"):
            ep = ep.sort_values("cumulative_cost")
            i = np.searchsorted(ep["cumulative_cost"].to_numpy(), grid, side="right") - 1
            values = (100.0 - ep["incumbent_valid_acc"] if column == "valid_error" else ep[column]).to_numpy()
            curves.append(np.where(i >= 0, values[np.maximum(i, 0)], np.nan))
        c = np.array(curves)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # grid points before any seed's first evaluation
            n = np.sum(~np.isnan(c), axis=0)
            mean = np.nanmean(c, axis=0)
            se = np.nanstd(c, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1))
        full = n == len(curves)  # start each curve once every seed has an incumbent (no mixed means)
        out[agent] = (grid / unit, np.where(full, mean, np.nan), np.where(full & (n > 1), se, np.nan))
    return out


def plot(df: pd.DataFrame, budget: float, best: float, path: Path, task: str, board: pd.DataFrame,
         unit: float | None = None) -> None:
    """The anytime plot: test regret (and, with ``unit``, the JAHS protocol's validation error) against cost.

    Legend entries of the top group (not significantly worse than the best) carry a filled circle.

    Args:
        df: The harness's results, one row per evaluation.
        budget: Simulated seconds per episode.
        best: The regret reference, in percent (in the axis label).
        path: The image file to write.
        task: The task (in the title).
        board: The leaderboard (its ``top group`` column).
        unit: Seconds of one mean full-fidelity evaluation (the JAHS protocol), else None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("regret", f"incumbent test regret (points below {best:.2f}%)")]
    if unit:
        panels.insert(0, ("valid_error", "incumbent validation error (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), squeeze=False)
    for ax, (column, ylabel) in zip(axes[0], panels):
        for agent, (x, m, se) in sorted(anytime(df, budget, column=column, unit=unit or 1.0).items()):
            mark = " ●" if board.at[agent, "top group"] else ""
            ax.plot(x, m, label=f"{agent}{mark}")
            ax.fill_between(x, m - se, m + se, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("cost / mean full-fidelity evaluation" if unit else "cumulative simulated training cost (s)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="● top group (Wilcoxon, Holm)", title_fontsize=7)
    fig.suptitle(f"JAHS-v0 {task}: mean ± standard error over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
