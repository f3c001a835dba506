"""Benchmark harness: agents x seeds on JAHS-v0 episodes, with a results table, anytime plot and leaderboard.

    python -m agents.bench --task fashion_mnist --agents random,hyperband,evolution,ucb,ppo --seeds 10
    python -m agents.bench --agents reinforce,dehb,smac,smac_mf,optuna_tpe --seeds 10

Agents: random search, successive halving, Hyperband, regularized evolution, UCB1, Thompson sampling, SB3
PPO/A2C/DQN (policies trained for exactly this run's settings and signed: agents/policies.py), and the
canonical NAS/HPO baselines: REINFORCE (NAS-Bench-201's controller), DEHB, SMAC3 (black-box and multi-fidelity)
and Optuna TPE; DEHB, SMAC and Optuna need their extras (jahs-gym[dehb], [smac], [optuna]). Every bad argument is
refused here, before any episode runs.

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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from agents.plot import anytime, plot  # noqa: F401  (part of the harness's API)
from agents.report import RESULT_COLUMNS, arm_reference, leaderboard, report, write_results  # noqa: F401

AGENTS = ("random", "successive_halving", "hyperband", "evolution", "ucb", "thompson", "ppo", "a2c", "dqn",
          "optuna_tpe", "reinforce", "dehb", "smac", "smac_mf")  # new ones last: an agent's rng stream is its index
# agent -> (module, class); the RL agents (ppo, a2c, dqn) are agents.rl.SB3Agent with their trained policy
CLASSES = {"random": ("random_search", "RandomSearch"), "successive_halving": ("hyperband", "SuccessiveHalving"),
           "hyperband": ("hyperband", "Hyperband"), "evolution": ("evolution", "RegularizedEvolution"),
           "ucb": ("bandits", "UCB1"), "thompson": ("bandits", "ThompsonSampling"),
           "optuna_tpe": ("optuna_tpe", "OptunaTPE"), "reinforce": ("reinforce", "Reinforce"),
           "dehb": ("dehb_agent", "DEHBAgent"), "smac": ("smac_agent", "SMACBlackBox"),
           "smac_mf": ("smac_agent", "SMACMultiFidelity")}
# agent -> (module it imports, the jahs-gym extra that installs it)
NEEDS = {"ppo": ("stable_baselines3", "agents"), "a2c": ("stable_baselines3", "agents"),
         "dqn": ("stable_baselines3", "agents"), "optuna_tpe": ("optuna", "optuna"), "dehb": ("dehb", "dehb"),
         "smac": ("smac", "smac"), "smac_mf": ("smac", "smac")}

RL_TIMESTEPS = 8192  # training steps of an RL policy the harness trains


def rl_args(algo: str, protocol: Any, policy_dir: Path | None, timesteps: int) -> Any:
    """The training settings of the RL policy an episode under ``protocol`` uses (its own env settings).

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
        protocol: The episodes' :class:`agents.common.Protocol`.
        policy_dir: Folder of the signed policies (None: the default, see ``agents/policies.py``).
        timesteps: Training steps of the policy.

    Returns:
        An ``agents.train_rl.Args``.
    """
    from agents.train_rl import Args

    return Args(algo=algo, task=protocol.task, total_timesteps=timesteps, budget=float(protocol.budget or 0.0),
                max_steps=protocol.max_steps, noise=protocol.noise, continuation=protocol.continuation,
                out=str(policy_dir or ""))


def make_agent(name: str, policy_dir: Path | None = None, protocol: Any = None,
               rl_timesteps: int = RL_TIMESTEPS) -> Any:
    """A fresh agent by its harness name.

    Args:
        name: One of ``AGENTS``.
        policy_dir: Folder of the RL policies (RL agents only).
        protocol: The episodes' :class:`agents.common.Protocol` (RL agents: their policy's settings).
        rl_timesteps: Training steps of an RL agent's policy.

    Returns:
        The agent: an ``agents.rl.SB3Agent`` for ppo, a2c and dqn, else an instance of its ``CLASSES`` entry.

    Raises:
        ValueError: ``name`` is not a harness agent.
    """
    if name in ("ppo", "a2c", "dqn"):
        from agents.rl import SB3Agent
        return SB3Agent(name, rl_args(name, protocol, policy_dir, rl_timesteps))
    if name not in CLASSES:
        raise ValueError(f"unknown agent {name!r}; allowed: {list(AGENTS)}")
    import importlib

    module, cls = CLASSES[name]
    return getattr(importlib.import_module(f"agents.{module}"), cls)()


def run_one(agent_name: str, seed: int, protocol: Any, policy_dir: Path | None = None,
            rl_timesteps: int = RL_TIMESTEPS) -> list[dict[str, Any]]:
    """One episode of one agent (on an arm backend, its arm-space version from ``agents/arms.py``).

    Args:
        agent_name: One of ``AGENTS``.
        seed: The episode's seed (env reset, the agent's rng, and the bandits' pool of arms).
        protocol: The episode's :class:`agents.common.Protocol`.
        policy_dir: Folder of the RL policies (RL agents only).
        rl_timesteps: Training steps of an RL agent's policy.

    Returns:
        One row per revealed evaluation: task, agent, seed and the :class:`agents.common.Recorder` columns (an
        episode that revealed none: one row of regret = the reference, ``Recorder.episode_rows``).
    """
    from agents.common import Recorder

    if protocol.backend != "surrogate":  # a table's arms: the agents' arm-space versions (agents/arms.py)
        from agents.arms import ArmPool, make_arm_agent

        agent = make_arm_agent(agent_name)
        env = protocol.make_env("multidiscrete")
        env = Recorder(ArmPool(env, seed=seed) if agent.action_type == "discrete" else env)
    else:
        agent = make_agent(agent_name, policy_dir, protocol, rl_timesteps)
        # bandits draw their pool of arms from the episode's seed: seeds are independent replications (with one
        # shared pool every seed would find the same best arm: a standard error of 0 that no test should trust)
        kw = {"arm_seed": seed} if getattr(agent, "arms_per_seed", False) else {}
        env = Recorder(protocol.make_env(agent.action_type, **kw))
    env.reset(seed=seed)
    agent.run(env, np.random.default_rng([seed, AGENTS.index(agent_name)]))
    return [{"task": protocol.task, "agent": agent_name, "seed": seed, **r} for r in env.episode_rows()]


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_jobs(jobs: list[tuple[str, int]], protocol: Any, policy_dir: Path | None, workers: int,
             progress: bool = True, rl_timesteps: int = RL_TIMESTEPS) -> list[dict[str, Any]]:
    """Run episodes in this process (``workers`` 1) or in spawned worker processes.

    Args:
        jobs: (agent name, seed) of each episode.
        protocol: The episodes' :class:`agents.common.Protocol`.
        policy_dir: Folder of the RL policies (RL agents only).
        workers: Worker processes; 1 runs the jobs here, in order.
        progress: Show a tqdm bar on stderr (when tqdm is installed).
        rl_timesteps: Training steps of an RL agent's policy.

    Returns:
        The rows of every episode (in completion order with several workers).
    """
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
            rows += run_one(a, s, protocol, policy_dir, rl_timesteps)
            if bar:
                bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as ex:
            futs = [ex.submit(run_one, a, s, protocol, policy_dir, rl_timesteps) for a, s in jobs]
            for f in as_completed(futs):
                rows += f.result()
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return rows


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


EXPENSIVE = ("ppo", "a2c", "dqn", "optuna_tpe", "dehb", "smac", "smac_mf")  # 10 seeds by default; the others 30


def flag_type(kind: type, minimum: float | None = None, exclusive: bool = False,
              choices: tuple[str, ...] | None = None) -> Any:
    """An argparse ``type``: the value as ``kind`` (finite, >= or > ``minimum``, or one of ``choices``), else one
    line naming the value and what is allowed. The one rule for every numeric or choice flag of the agents' CLIs.

    Args:
        kind: ``int``, ``float`` or ``str``.
        minimum: The lowest value allowed (numbers; None: any finite value).
        exclusive: ``minimum`` itself is not allowed.
        choices: The values allowed (``str`` only).

    Returns:
        A function of the flag's text that returns the value or raises ``argparse.ArgumentTypeError``.
    """
    if kind is str:
        what = f"one of {', '.join(choices or ())}"
    else:
        what = f"a finite {kind.__name__}" + ("" if minimum is None else f" {'>' if exclusive else '>='} {minimum:g}")

    def parse(spec: str) -> Any:
        try:
            v = kind(spec)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{spec!r} is not allowed; allowed: {what}") from None
        bad = (choices is not None and v not in choices) or (kind is not str and (
            not np.isfinite(v) or (minimum is not None and (v <= minimum if exclusive else v < minimum))))
        if bad:
            raise argparse.ArgumentTypeError(f"{spec!r} is not allowed; allowed: {what}")
        return v
    return parse


def agent_list(spec: str) -> list[str]:
    """--agents: comma-separated harness agents, each once (a repeat would run its seeds twice).

    Args:
        spec: The flag's text, e.g. ``"random,hyperband,ppo"``.

    Returns:
        The agent names, in the order given.

    Raises:
        ArgumentTypeError: No agent, an unknown or repeated one, or one whose packages are not installed.
    """
    names = [a.strip() for a in spec.split(",")]
    bad = [a for a in names if a not in AGENTS]
    if bad or not spec.strip():
        raise argparse.ArgumentTypeError(f"{spec!r} names {bad or 'no agent'}; allowed: comma-separated, from "
                                         f"{', '.join(AGENTS)}")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{spec!r} names {sorted({a for a in names if names.count(a) > 1})} "
                                         "more than once; allowed: each agent once")
    import importlib.util

    missing = [a for a in names if a in NEEDS and importlib.util.find_spec(NEEDS[a][0]) is None]
    if missing:
        extras = ",".join(sorted({NEEDS[a][1] for a in missing}))
        raise argparse.ArgumentTypeError(f"{spec!r}: agent(s) {missing} need packages that are not installed; "
                                         f"allowed: agents whose packages are installed (pip install "
                                         f"'jahs-gym[{extras}]')")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The harness's flags, every bad value refused (argparse prints one line and exits 2).

    Args:
        argv: The arguments (None: ``sys.argv[1:]``).

    Returns:
        The parsed flags.
    """
    p = argparse.ArgumentParser(prog="python -m agents.bench", description=__doc__,
                                formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", help="installed task (see `jahs-gym tasks`)")
    p.add_argument("--agents", type=agent_list, default="random,hyperband,evolution,ucb,ppo",
                   help=f"comma-separated, from: {', '.join(AGENTS)}")
    p.add_argument("--protocol", default="default", choices=["default", "jahs"],
                   help="default: the bundle's budget (~100 mid-fidelity evaluations); jahs: JAHS-Bench-201's "
                        "evaluation protocol, 100 mean full-fidelity evaluations, cost axis in that unit")
    p.add_argument("--seeds", type=flag_type(int, 1), default=None,
                   help=f"episodes per agent (seeds F..F+N-1); default 30, and 10 for {', '.join(EXPENSIVE)}")
    p.add_argument("--first-seed", type=flag_type(int, 0), default=0,
                   help="F, the first seed (disjoint seed sets: another F)")
    p.add_argument("--budget", type=flag_type(float, 0, exclusive=True), default=None,
                   help="simulated seconds per episode (default protocol only; default: the bundle's)")
    p.add_argument("--max-steps", type=flag_type(int, 1), default=None,
                   help="evaluations per episode at most (default 1000; 10000 with --protocol jahs)")
    p.add_argument("--noise", action="store_true", help="draw evaluations from the bundle's seed-noise model")
    p.add_argument("--backend", default="surrogate", choices=["surrogate", "table", "surrogate_arms"],
                   help="surrogate: the whole space; table: the table's trained runs, measured (noise: one real "
                        "seed per run); surrogate_arms: the same runs, predicted. The arm backends run the agents' "
                        "arm-space versions (agents/arms.py; no RL agents)")
    p.add_argument("--no-continuation", action="store_true",
                   help="charge full cost when a config is trained further at the same fidelity")
    p.add_argument("--workers", type=flag_type(int, 1), default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--policy-dir", type=Path, default=None,
                   help="folder of the RL policies the harness trains and signs (default: the harness's folder in "
                        "the user's cache, see agents/policies.py); a policy is reused only when its signed stamp "
                        "matches every setting of this run, else it is trained again")
    p.add_argument("--rl-timesteps", type=flag_type(int, 1), default=RL_TIMESTEPS,
                   help="training steps of an RL policy")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for results, plot, leaderboard")
    args = p.parse_args(argv)
    if args.protocol == "jahs" and args.budget is not None:
        p.error(f"--budget {args.budget:g} does not go with --protocol jahs; allowed: no --budget (the protocol's "
                "budget is 100 mean full-fidelity evaluations)")
    if args.backend != "surrogate":
        from agents.arms import ARM_AGENTS
        bad = [a for a in args.agents if a not in ARM_AGENTS]
        if bad:
            p.error(f"--backend {args.backend}: agent(s) {bad} have no arm-space version; allowed: "
                    f"{', '.join(ARM_AGENTS)}")
    for flag, folder in (("--out", args.out), ("--policy-dir", args.policy_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            p.error(f"{flag} {folder} is a file; allowed: a folder (existing or new)")
    return args


def train_policies(names: list[str], protocol: Any, policy_dir: Path | None, timesteps: int) -> None:
    """Train every RL policy the run needs that is not saved, signed, for exactly these settings.

    Args:
        names: The run's agents (only ppo, a2c and dqn have policies).
        protocol: The episodes' :class:`agents.common.Protocol`.
        policy_dir: Folder of the signed policies (None: the default).
        timesteps: Training steps of each policy.
    """
    from agents import policies
    from agents.train_rl import policy_file, policy_settings, train

    for algo in ("ppo", "a2c", "dqn"):
        if algo in names:
            args = rl_args(algo, protocol, policy_dir, timesteps)
            why = policies.stale(policy_file(args), policy_settings(args))
            if why:
                print(f"training a {algo} policy ({timesteps} steps): {why}", file=sys.stderr)
                train(args)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``python -m agents.bench``) and write results, plot and leaderboard to ``--out``.

    Args:
        argv: The arguments (None: ``sys.argv[1:]``).

    Returns:
        0 on success or ``--help``; 2 on a refused argument, task or ``--out``, or (``--protocol jahs``) a bundle
        without a mean full-fidelity cost.
    """
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse printed the one-line refusal (or --help)
        return int(e.code or 0)
    from agents.common import Protocol
    from jahs_gym.bundle import load_bundle
    from jahs_gym.manifest import BundleError

    names = args.agents
    try:
        bundle = load_bundle(args.task)
    except (KeyError, ValueError, BundleError) as e:
        print(f"--task {args.task!r}: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"--out {args.out}: cannot make the folder ({e.strerror}); allowed: a folder you can write",
              file=sys.stderr)
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
        train_policies(names, protocol, args.policy_dir, args.rl_timesteps)
    if comm:
        comm.Barrier()
    jobs = [(a, args.first_seed + s) for a in names for s in range(args.seeds or (10 if a in EXPENSIVE else 30))]
    mine = jobs[rank::comm.Get_size()] if comm else jobs
    rows = run_jobs(mine, protocol, args.policy_dir, 1 if comm else args.workers, progress=rank == 0,
                    rl_timesteps=args.rl_timesteps)
    if comm:
        gathered = comm.gather(rows, root=0)
        if rank != 0:
            return 0
        rows = [r for part in gathered for r in part]
    write_results(rows, args, budget, best, man, unit, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
