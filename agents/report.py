"""What the harness (``python -m agents.bench``) writes: OUT/results.parquet, OUT/anytime.png, OUT/leaderboard.md.

The leaderboard (final regrets ranked: mean +- SE, average rank, every pair's exact paired test from agents/stats.py),
its markdown report, and the regret reference of an arm backend. :mod:`agents.bench` re-exports these names.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from agents.plot import plot

RESULT_COLUMNS = ("task", "agent", "seed", "step", "cost", "cumulative_cost", "valid_acc", "test_acc",
                  "incumbent_valid_acc", "incumbent_test_acc", "regret", "N", "W", "Resolution", "epoch", "wall_s")


def write_results(rows: list[dict[str, Any]], args: Any, budget: float, best: float, man: Any, unit: float | None,
                  t0: float) -> None:
    """Write the run's results table, anytime plot and leaderboard to ``args.out``, and print the leaderboard.

    Args:
        rows: Every episode's rows (``RESULT_COLUMNS``; :func:`agents.bench.run_jobs`).
        args: The parsed flags (out, task, and what :func:`report` reads).
        budget: Simulated seconds per episode.
        best: The regret reference, in percent.
        man: The bundle's manifest.
        unit: Seconds of one mean full-fidelity evaluation under ``--protocol jahs``, else None.
        t0: When the harness started (``time.time()``), for its wall time.
    """
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).sort_values(["agent", "seed", "step"]).reset_index(drop=True)
    df.to_parquet(args.out / "results.parquet", index=False)
    board, pairs = leaderboard(df)
    plot(df, budget, best, args.out / "anytime.png", args.task, board, unit)
    md = report(board, pairs, args, budget, best, man, unit, time.time() - t0)
    (args.out / "leaderboard.md").write_text(md + "\n")
    print(md)
    print(f"\nwrote {args.out / 'results.parquet'}, {args.out / 'anytime.png'}, {args.out / 'leaderboard.md'}")


def leaderboard(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard of a results table, and every pair's paired test (agents/stats.py).

    Args:
        df: The results (``RESULT_COLUMNS``), one row per evaluation.

    Returns:
        (board, pairs): one row per agent by mean final regret (mean +- SE, average rank, whom it beats, top
        group); :func:`agents.stats.pairwise` of the final regrets.
    """
    from agents.stats import average_ranks, beats, final_regrets, pairwise, top_group

    last = df.sort_values("step").groupby(["agent", "seed"]).agg(
        final_regret=("regret", "last"), evaluations=("step", "max"), wall_s=("wall_s", "max"),
        cost=("cumulative_cost", "max"))
    g = last.groupby("agent")
    board = pd.DataFrame({
        "final_regret_mean": g["final_regret"].mean(),
        "final_regret_se": g["final_regret"].std(ddof=1) / np.sqrt(g.size()),
        "evaluations": g["evaluations"].mean(), "wall_s": g["wall_s"].mean(), "seeds": g.size(),
        "empty_episodes": g["evaluations"].apply(lambda e: int((e == 0).sum()))})
    board = board.sort_values("final_regret_mean", kind="stable")
    final = final_regrets(df)
    pairs = pairwise(final)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board.insert(3, "avg_rank", average_ranks(final).reindex(board.index))
    wins = beats(pairs)
    top = top_group(board, pairs)
    board["beats (p<0.05, Holm)"] = [", ".join(sorted(wins.get(a, []))) or "-" for a in board.index]
    board["top group"] = ["yes" if a in top else "" for a in board.index]
    return board, pairs


def arm_reference(task: str, backend: str) -> float:
    """The regret reference of an arm backend: the best noise-free test accuracy of the table's runs.

    Args:
        task: The installed task.
        backend: ``"table"`` or ``"surrogate_arms"``.

    Returns:
        That accuracy, in percent.
    """
    from jahs_gym.envs.tasks import EnvTask

    return EnvTask(task, 10, None, None, backend=backend).regret_reference


def report(board: pd.DataFrame, pairs: pd.DataFrame, args: Any, budget: float, best: float, man: Any,
           unit: float | None, wall_s: float) -> str:
    """The leaderboard as markdown: what was run, the board, and every pair's test.

    Args:
        board: The board of :func:`leaderboard`.
        pairs: The pairs of :func:`leaderboard`.
        args: The parsed flags (task, budget, noise, backend, no_continuation).
        budget: Simulated seconds per episode.
        best: The regret reference, in percent.
        man: The bundle's manifest.
        unit: Seconds of one mean full-fidelity evaluation under ``--protocol jahs``, else None.
        wall_s: The harness's wall time.

    Returns:
        The markdown (a pipe table when tabulate is installed, else plain text tables).
    """
    whose = "the bundle's" if getattr(args, "budget", None) is None else "--budget"
    proto = (f"JAHS-Bench-201 protocol: budget 100 mean full-fidelity evaluations ({budget:.0f} simulated s; "
             f"one = {unit:.1f} s)" if unit else f"default protocol: budget {budget:.0f} simulated s ({whose})")
    ref = (f"the surrogate's optimum test accuracy ({best:.2f}%; the table's best single run: "
           f"{man.table.best_test_acc:.2f}%)" if args.backend == "surrogate" else
           f"the best noise-free test accuracy of the table's runs ({best:.2f}%, backend {args.backend})")
    head = (f"# JAHS-v0 leaderboard: {args.task}\n\nBundle {args.task}, manifest digest {man.digest[:12]}. {proto}; "
            "seeds per agent in the table; noise "
            f"{'on' if args.noise else 'off'}; continuation {'off' if args.no_continuation else 'on'}. Regret = "
            f"{ref} minus the incumbent's noise-free test accuracy. avg_rank: mean rank over "
            "the seeds every agent ran. beats: lower final regret in an exact paired Wilcoxon signed-rank test, "
            "Holm-corrected over all pairs, p < 0.05; top group: not significantly worse than the best. "
            f"{_empty_episodes(board)}Harness wall time {wall_s:.0f} s.\n\n")
    tab = _has_tabulate()
    body = board.to_markdown(floatfmt=".3f") if tab else board.to_string()
    shown = pairs.assign(mean_diff=pairs["mean_diff"].round(3), p=pairs["p"].map("{:.2g}".format),
                         p_holm=pairs["p_holm"].map("{:.2g}".format))
    ptab = shown.to_markdown(index=False) if tab else shown.to_string(index=False)
    return head + body + "\n\nPairwise tests (mean_diff = a - b in final regret):\n\n" + ptab


def _empty_episodes(board: pd.DataFrame) -> str:
    """The report's sentence on episodes that revealed no evaluation within the budget, if any."""
    empty = {a: int(n) for a, n in board["empty_episodes"].items() if n}
    if not empty:
        return ""
    who = ", ".join(f"{a} {n}" for a, n in sorted(empty.items()))
    return (f"Episodes whose first evaluation already cost more than the budget (nothing found; final regret = "
            f"the reference): {who}. ")


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None
