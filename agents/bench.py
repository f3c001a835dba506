"""Benchmark harness: agents x seeds on JAHS-v0 episodes, with a results table, anytime plot and leaderboard.

    python -m agents.bench --task fashion_mnist --agents random,hyperband,evolution,ucb,ppo --seeds 10

Runs in parallel worker processes on one machine; under ``mpiexec -n P`` the same command spreads the
jobs over the ranks. Writes OUT/results.parquet (one row per evaluation), OUT/anytime.png (mean and
standard error over seeds, log x axis) and OUT/leaderboard.md: mean final regret, average rank over seeds,
and which pairwise differences are significant (exact paired Wilcoxon signed-rank tests on final regret,
Holm-corrected: agents/stats.py). Regret is the surrogate's own optimum test accuracy (found when the
bundle was fitted: generation/optimum.py) minus the incumbent's noise-free test accuracy, so it is >= 0.

Protocols: ``default`` (the bundle's budget, about 100 mid-fidelity evaluations: what JAHS-v0 gives RL
agents by default) and ``jahs``, JAHS-Bench-201's evaluation protocol: a budget of 100 mean full-fidelity
evaluations (the mean over the space, from the surrogate), trajectories of the incumbent's validation error
and test regret against the cost in multiples of one mean full-fidelity evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AGENTS = ("random", "successive_halving", "hyperband", "evolution", "ucb", "thompson", "ppo", "a2c", "dqn",
          "optuna_tpe")
RESULT_COLUMNS = ("task", "agent", "seed", "step", "cost", "cumulative_cost", "valid_acc", "test_acc",
                  "incumbent_valid_acc", "incumbent_test_acc", "regret", "N", "W", "Resolution", "epoch", "wall_s")


def make_agent(name: str, policy_dir: Path) -> Any:
    if name == "random":
        from agents.random_search import RandomSearch
        return RandomSearch()
    if name in ("successive_halving", "hyperband"):
        from agents.hyperband import Hyperband, SuccessiveHalving
        return SuccessiveHalving() if name == "successive_halving" else Hyperband()
    if name == "evolution":
        from agents.evolution import RegularizedEvolution
        return RegularizedEvolution()
    if name in ("ucb", "thompson"):
        from agents.bandits import UCB1, ThompsonSampling
        return UCB1() if name == "ucb" else ThompsonSampling()
    if name in ("ppo", "a2c", "dqn"):
        from agents.rl import SB3Agent
        return SB3Agent(name, policy_dir / f"{name}.zip")
    if name == "optuna_tpe":
        from agents.optuna_tpe import OptunaTPE
        return OptunaTPE()
    raise ValueError(f"unknown agent {name!r}; allowed: {list(AGENTS)}")


def run_one(agent_name: str, seed: int, protocol: Any, policy_dir: Path) -> list[dict[str, Any]]:
    """One episode of one agent; the rows of its evaluations."""
    from agents.common import Recorder

    if protocol.backend != "surrogate":  # a table's arms: the agents' arm-space versions (agents/arms.py)
        from agents.arms import ArmPool, make_arm_agent

        agent = make_arm_agent(agent_name)
        env = protocol.make_env("multidiscrete")
        env = Recorder(ArmPool(env, seed=seed) if agent.action_type == "discrete" else env)
    else:
        agent = make_agent(agent_name, policy_dir)
        # bandits draw their pool of arms from the episode's seed: seeds are independent replications (with one
        # shared pool every seed would find the same best arm: a standard error of 0 that no test should trust)
        kw = {"arm_seed": seed} if getattr(agent, "arms_per_seed", False) else {}
        env = Recorder(protocol.make_env(agent.action_type, **kw))
    env.reset(seed=seed)
    agent.run(env, np.random.default_rng([seed, AGENTS.index(agent_name)]))
    return [{"task": protocol.task, "agent": agent_name, "seed": seed, **r} for r in env.rows]


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_jobs(jobs: list[tuple[str, int]], protocol: Any, policy_dir: Path, workers: int,
             progress: bool = True) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(jobs), desc="episodes", file=sys.stderr)
        except ImportError:
            pass
    if workers <= 1:
        for a, s in jobs:
            rows += run_one(a, s, protocol, policy_dir)
            if bar:
                bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as ex:
            futs = [ex.submit(run_one, a, s, protocol, policy_dir) for a, s in jobs]
            for f in as_completed(futs):
                rows += f.result()
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return rows


def leaderboard(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(board, pairs): per agent mean +- SE of final regret, average rank over seeds, which agents it beats
    significantly; and every pair's paired test (agents/stats.py)."""
    from agents.stats import average_ranks, beats, final_regrets, pairwise, top_group

    last = df.sort_values("step").groupby(["agent", "seed"]).agg(
        final_regret=("regret", "last"), evaluations=("step", "max"), wall_s=("wall_s", "max"),
        cost=("cumulative_cost", "max"))
    g = last.groupby("agent")
    board = pd.DataFrame({
        "final_regret_mean": g["final_regret"].mean(),
        "final_regret_se": g["final_regret"].std(ddof=1) / np.sqrt(g.size()),
        "evaluations": g["evaluations"].mean(), "wall_s": g["wall_s"].mean(), "seeds": g.size()})
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


def anytime(df: pd.DataFrame, budget: float, points: int = 200, column: str = "regret",
            unit: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """agent -> (cost grid / ``unit``, mean, standard error over seeds) of ``column`` (the incumbent's test regret,
    or its validation error) at each cost.

    A curve starts where every seed has its first evaluation, so a mean never mixes seeds in and out.
    """
    lo = max(float(df["cumulative_cost"].min()), budget * 1e-4)
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

    Legend entries of the top group (not significantly worse than the best) carry a filled circle."""
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


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


EXPENSIVE = ("ppo", "a2c", "dqn", "optuna_tpe")  # 10 seeds by default; every other agent 30


def _positive(kind: type) -> Any:
    def parse(spec: str) -> Any:
        try:
            v = kind(spec)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{spec!r} is not a {kind.__name__}") from None
        if not (np.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"{spec} is not allowed; allowed: a positive, finite {kind.__name__}")
        return v
    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agents.bench", description=__doc__,
                                formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", help="installed task (see `jahs-gym tasks`)")
    p.add_argument("--agents", default="random,hyperband,evolution,ucb,ppo",
                   help=f"comma-separated, from: {', '.join(AGENTS)}")
    p.add_argument("--protocol", default="default", choices=["default", "jahs"],
                   help="default: the bundle's budget (~100 mid-fidelity evaluations); jahs: JAHS-Bench-201's "
                        "evaluation protocol, 100 mean full-fidelity evaluations, cost axis in that unit")
    p.add_argument("--seeds", type=_positive(int), default=None,
                   help=f"episodes per agent (seeds F..F+N-1); default 30, and 10 for {', '.join(EXPENSIVE)}")
    p.add_argument("--first-seed", type=int, default=0, help="F, the first seed (disjoint seed sets: another F)")
    p.add_argument("--budget", type=_positive(float), default=None,
                   help="simulated seconds per episode (default protocol only; default: the bundle's)")
    p.add_argument("--max-steps", type=_positive(int), default=None,
                   help="evaluations per episode at most (default 1000; 10000 with --protocol jahs)")
    p.add_argument("--noise", action="store_true", help="draw evaluations from the bundle's seed-noise model")
    p.add_argument("--backend", default="surrogate", choices=["surrogate", "table", "surrogate_arms"],
                   help="surrogate: the whole space; table: the table's trained runs, measured (noise: one real "
                        "seed per run); surrogate_arms: the same runs, predicted. The arm backends run the agents' "
                        "arm-space versions (agents/arms.py; no RL agents)")
    p.add_argument("--no-continuation", action="store_true",
                   help="charge full cost when a config is trained further at the same fidelity")
    p.add_argument("--workers", type=_positive(int), default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--policy-dir", type=Path, default=Path("policies"),
                   help="where RL policies are loaded from (ALGO.zip, with ALGO.json: the task, bundle and budget "
                        "they were trained for); missing or stale ones are trained first")
    p.add_argument("--rl-timesteps", type=_positive(int), default=8192, help="training steps for a missing RL policy")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for results, plot, leaderboard")
    args = p.parse_args(argv)

    from agents.common import Protocol
    from jahs_gym.bundle import load_bundle

    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    bad = [a for a in names if a not in AGENTS]
    if bad or not names:
        print(f"unknown agent(s) {bad or repr(args.agents)}; allowed: {', '.join(AGENTS)}", file=sys.stderr)
        return 2
    if args.protocol == "jahs" and args.budget is not None:
        print("--budget does not go with --protocol jahs (its budget is 100 mean full-fidelity evaluations)",
              file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.task)
    except (KeyError, ValueError) as e:
        print(f"--task {args.task!r}: {e}", file=sys.stderr)
        return 2
    man = bundle.manifest
    unit = man.full_fidelity_cost_s if args.protocol == "jahs" else None
    if args.protocol == "jahs":
        if unit is None:
            print(f"the {args.task} bundle records no mean full-fidelity cost (an older fit): refit it",
                  file=sys.stderr)
            return 2
        budget = 100.0 * unit
    else:
        budget = float(args.budget or man.default_budget_s)
    max_steps = args.max_steps or (10_000 if args.protocol == "jahs" else 1000)
    if args.backend != "surrogate":
        from agents.arms import ARM_AGENTS
        bad = [a for a in names if a not in ARM_AGENTS]
        if bad:
            print(f"--backend {args.backend}: agent(s) {bad} have no arm-space version; allowed: "
                  f"{', '.join(ARM_AGENTS)}", file=sys.stderr)
            return 2
    protocol = Protocol(task=args.task, budget=budget, max_steps=max_steps, noise=args.noise,
                        continuation=not args.no_continuation, backend=args.backend)
    best = man.regret_reference if args.backend == "surrogate" else arm_reference(args.task, args.backend)

    comm = None
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None
    except ImportError:
        pass
    rank = comm.Get_rank() if comm else 0
    t0 = time.time()
    if rank == 0:
        from agents.train_rl import policy_stamp, stale_policy
        for algo in ("ppo", "a2c", "dqn"):
            if algo not in names:
                continue
            path = args.policy_dir / f"{algo}.zip"
            why = stale_policy(path, policy_stamp(algo, args.task, budget)) if path.exists() else "none saved"
            if why:
                from agents.train_rl import Args, train
                print(f"training a {algo} policy ({args.rl_timesteps} steps) into {args.policy_dir} "
                      f"({why})", file=sys.stderr)
                train(Args(algo=algo, task=args.task, total_timesteps=args.rl_timesteps, out=str(args.policy_dir),
                           budget=budget))
    if comm:
        comm.Barrier()
    if args.first_seed < 0:
        print(f"--first-seed {args.first_seed} is negative; allowed: 0 or more", file=sys.stderr)
        return 2
    jobs = [(a, args.first_seed + s) for a in names for s in range(args.seeds or (10 if a in EXPENSIVE else 30))]
    mine = jobs[rank::comm.Get_size()] if comm else jobs
    rows = run_jobs(mine, protocol, args.policy_dir, 1 if comm else args.workers, progress=rank == 0)
    if comm:
        gathered = comm.gather(rows, root=0)
        if rank != 0:
            return 0
        rows = [r for part in gathered for r in part]
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).sort_values(["agent", "seed", "step"]).reset_index(drop=True)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out / "results.parquet", index=False)
    board, pairs = leaderboard(df)
    plot(df, budget, best, args.out / "anytime.png", args.task, board, unit)
    md = report(board, pairs, args, budget, best, man, unit, time.time() - t0)
    (args.out / "leaderboard.md").write_text(md + "\n")
    print(md)
    print(f"\nwrote {args.out / 'results.parquet'}, {args.out / 'anytime.png'}, {args.out / 'leaderboard.md'}")
    return 0


def arm_reference(task: str, backend: str) -> float:
    """The regret reference of an arm backend: the best noise-free test accuracy of the table's runs."""
    from jahs_gym.envs.tasks import EnvTask

    return EnvTask(task, 10, None, None, backend=backend).regret_reference


def report(board: pd.DataFrame, pairs: pd.DataFrame, args: Any, budget: float, best: float, man: Any,
           unit: float | None, wall_s: float) -> str:
    """The leaderboard as markdown: what was run, the board, and every pair's test."""
    proto = (f"JAHS-Bench-201 protocol: budget 100 mean full-fidelity evaluations ({budget:.0f} simulated s; "
             f"one = {unit:.1f} s)" if unit else f"default protocol: budget {budget:.0f} simulated s (the bundle's)")
    ref = (f"the surrogate's optimum test accuracy ({best:.2f}%; the table's best single run: "
           f"{man.table.best_test_acc:.2f}%)" if args.backend == "surrogate" else
           f"the best noise-free test accuracy of the table's runs ({best:.2f}%, backend {args.backend})")
    head = (f"# JAHS-v0 leaderboard: {args.task}\n\n{proto}; seeds per agent in the table; noise "
            f"{'on' if args.noise else 'off'}; continuation {'off' if args.no_continuation else 'on'}. Regret = "
            f"{ref} minus the incumbent's noise-free test accuracy. avg_rank: mean rank over "
            "the seeds every agent ran. beats: lower final regret in an exact paired Wilcoxon signed-rank test, "
            "Holm-corrected over all pairs, p < 0.05; top group: not significantly worse than the best. Harness "
            f"wall time {wall_s:.0f} s.\n\n")
    tab = _has_tabulate()
    body = board.to_markdown(floatfmt=".3f") if tab else board.to_string()
    shown = pairs.assign(mean_diff=pairs["mean_diff"].round(3), p=pairs["p"].map("{:.2g}".format),
                         p_holm=pairs["p_holm"].map("{:.2g}".format))
    ptab = shown.to_markdown(index=False) if tab else shown.to_string(index=False)
    return head + body + "\n\nPairwise tests (mean_diff = a - b in final regret):\n\n" + ptab


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    sys.exit(main())
