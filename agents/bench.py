"""Benchmark harness: agents x seeds on JAHS-v0 episodes, with a results table, anytime plot and leaderboard.

    python -m agents.bench --task fashion_mnist --agents random,hyperband,evolution,ucb,ppo --seeds 10

Runs in parallel worker processes on one machine; under ``mpiexec -n P`` the same command spreads the
jobs over the ranks. Writes OUT/results.parquet (one row per evaluation), OUT/anytime.png (incumbent
test regret against cumulative simulated cost, mean and standard error over seeds, log x axis) and
OUT/leaderboard.md. Regret is measured against the best test accuracy that the task's training table
knows; the output says which value that was.
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

    agent = make_agent(agent_name, policy_dir)
    env = Recorder(protocol.make_env(agent.action_type))
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


def leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    last = df.sort_values("step").groupby(["agent", "seed"]).agg(
        final_regret=("regret", "last"), evaluations=("step", "max"), wall_s=("wall_s", "max"),
        cost=("cumulative_cost", "max"))
    g = last.groupby("agent")
    board = pd.DataFrame({
        "final_regret_mean": g["final_regret"].mean(),
        "final_regret_se": g["final_regret"].std(ddof=1) / np.sqrt(g.size()),
        "evaluations": g["evaluations"].mean(), "wall_s": g["wall_s"].mean(), "seeds": g.size()})
    board = board.sort_values("final_regret_mean")
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


def anytime(df: pd.DataFrame, budget: float, points: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """agent -> (cost grid, mean regret, standard error) of the incumbent's test regret over seeds.

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
            curves.append(np.where(i >= 0, ep["regret"].to_numpy()[np.maximum(i, 0)], np.nan))
        c = np.array(curves)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # grid points before any seed's first evaluation
            n = np.sum(~np.isnan(c), axis=0)
            mean = np.nanmean(c, axis=0)
            se = np.nanstd(c, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1))
        full = n == len(curves)  # start each curve once every seed has an incumbent (no mixed means)
        out[agent] = (grid, np.where(full, mean, np.nan), np.where(full & (n > 1), se, np.nan))
    return out


def plot(df: pd.DataFrame, budget: float, best: float, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for agent, (x, m, se) in sorted(anytime(df, budget).items()):
        ax.plot(x, m, label=agent)
        ax.fill_between(x, m - se, m + se, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative simulated training cost (s)")
    ax.set_ylabel(f"incumbent test regret (points below {best:.2f}%)")
    ax.set_title(f"JAHS-v0 {task}: mean ± standard error over {df['seed'].nunique()} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agents.bench", description=__doc__,
                                formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", help="installed task (see `jahs-gym tasks`)")
    p.add_argument("--agents", default="random,hyperband,evolution,ucb,ppo",
                   help=f"comma-separated, from: {', '.join(AGENTS)}")
    p.add_argument("--seeds", type=int, default=10, help="episodes per agent (seeds 0..N-1)")
    p.add_argument("--budget", type=float, default=None,
                   help="simulated seconds per episode (default: the bundle's, ~100 mid-fidelity evaluations)")
    p.add_argument("--max-steps", type=int, default=1000, help="evaluations per episode at most")
    p.add_argument("--noise", action="store_true", help="draw evaluations from the bundle's seed-noise model")
    p.add_argument("--no-continuation", action="store_true",
                   help="charge full cost when a config is trained further at the same fidelity")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--policy-dir", type=Path, default=Path("policies"),
                   help="where RL policies are loaded from (ALGO.zip, with ALGO.json: the task, bundle and budget "
                        "they were trained for); missing or stale ones are trained first")
    p.add_argument("--rl-timesteps", type=int, default=8192, help="training steps for a missing RL policy")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for results, plot, leaderboard")
    args = p.parse_args(argv)

    from agents.common import Protocol
    from jahs_gym.bundle import load_bundle

    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    bad = [a for a in names if a not in AGENTS]
    if bad:
        print(f"unknown agent(s) {bad}; allowed: {', '.join(AGENTS)}", file=sys.stderr)
        return 2
    bundle = load_bundle(args.task)
    protocol = Protocol(task=args.task, budget=args.budget, max_steps=args.max_steps, noise=args.noise,
                        continuation=not args.no_continuation)
    budget = float(args.budget or bundle.manifest.default_budget_s)
    table = bundle.manifest.table
    best = bundle.manifest.best_test_acc

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
                           budget=args.budget or 0.0))
    if comm:
        comm.Barrier()
    jobs = [(a, s) for a in names for s in range(args.seeds)]
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
    board = leaderboard(df)
    plot(df, budget, best, args.out / "anytime.png", args.task)
    header = (f"# JAHS-v0 leaderboard: {args.task}\n\n{args.seeds} seeds per agent; budget {budget:.0f} simulated s; "
              f"regret = best test accuracy the task's data knows ({best:.2f}%, {table.best_test_acc_at or ''}) "
              f"minus the incumbent's test accuracy; harness wall time {time.time() - t0:.0f} s.\n\n")
    md = header + board.to_markdown(floatfmt=".3f") if _has_tabulate() else header + board.to_string()
    (args.out / "leaderboard.md").write_text(md + "\n")
    print(md)
    print(f"\nwrote {args.out / 'results.parquet'}, {args.out / 'anytime.png'}, {args.out / 'leaderboard.md'}")
    return 0


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    sys.exit(main())
