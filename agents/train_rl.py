"""Train an SB3 policy (PPO, A2C or DQN) on JAHS-v0 episodes and save it with its signed stamp.

    python -m agents.train_rl --algo ppo --total-timesteps 20000

Reads top to bottom: arguments, environment, model, training, saving. The policy goes to
OUT/ALGO-DIGEST.zip with ALGO-DIGEST.json, the stamp of every setting that shaped it and the zip's sha256,
signed with the user's key (agents/policies.py); the harness (`python -m agents.bench`) loads only such
policies, for exactly its own settings. OUT defaults to the harness's folder in the user's cache. Logs to
TensorBoard when the tensorboard package is installed (``--tensorboard DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import policies
from agents.rl import ALGOS


@dataclass
class Args:
    """The training settings (each one a flag: ``--total-timesteps`` for total_timesteps).

    Attributes:
        algo: ppo, a2c (multidiscrete actions) or dqn (discrete arms).
        task: Installed task (see ``jahs-gym tasks``).
        total_timesteps: Environment steps of training.
        n_envs: Parallel training episodes (SB3 DummyVecEnv).
        seed: Training seed.
        budget: Simulated seconds per episode; 0: the bundle's default.
        max_steps: Evaluations per episode at most.
        noise: Draw evaluations from the bundle's seed-noise model.
        continuation: Promotions pay only the extra epochs.
        out: Folder of ALGO-DIGEST.zip ("": the harness's folder in the user's cache).
        tensorboard: TensorBoard log folder ("": off; needs the tensorboard package).
    """

    algo: str = "ppo"  # ppo, a2c (multidiscrete actions) or dqn (discrete arms)
    task: str = "fashion_mnist"  # installed task (see `jahs-gym tasks`)
    total_timesteps: int = 8192  # environment steps of training
    n_envs: int = 4  # parallel training episodes (SB3 DummyVecEnv)
    seed: int = 0  # training seed
    budget: float = 0.0  # simulated seconds per episode; 0: the bundle's default
    max_steps: int = 1000  # evaluations per episode at most
    noise: bool = False  # draw evaluations from the bundle's seed-noise model
    continuation: bool = True  # promotions pay only the extra epochs
    out: str = ""  # folder of ALGO-DIGEST.zip ("" = the harness's folder in the user's cache)
    tensorboard: str = ""  # TensorBoard log folder ("" = off; needs the tensorboard package)


def parse(argv: list[str] | None = None) -> Args:
    """The training flags, every bad value refused (argparse prints one line and exits 2).

    Args:
        argv: The arguments (None: ``sys.argv[1:]``).

    Returns:
        The settings.
    """
    from agents.bench import flag_type

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    checks = {"algo": flag_type(str, choices=tuple(ALGOS)), "total_timesteps": flag_type(int, 1),
              "n_envs": flag_type(int, 1), "seed": flag_type(int, 0), "budget": flag_type(float, 0),
              "max_steps": flag_type(int, 1)}
    for f in dataclasses.fields(Args):
        name = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            p.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            p.add_argument(name, type=checks.get(f.name, type(f.default)), default=f.default,
                           help=f"(default: {f.default!r})")
    return Args(**vars(p.parse_args(argv)))


def model_kwargs(algo: str) -> dict[str, Any]:
    """The algorithm's hyperparameters besides SB3's defaults (the stamp records them and SB3's version).

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``.

    Returns:
        SB3 keyword -> value, with the policy class as ``policy``.

    Raises:
        ValueError: An unknown ``algo``.
    """
    if algo == "ppo":
        return {"policy": "MlpPolicy", "n_steps": 256, "batch_size": 256}
    if algo == "dqn":
        return {"policy": "MlpPolicy", "learning_starts": 256, "buffer_size": 50_000, "exploration_fraction": 0.5}
    if algo == "a2c":
        return {"policy": "MlpPolicy"}
    raise ValueError(f"--algo {algo!r}; allowed: {list(ALGOS)}")


def policy_settings(args: Args) -> dict[str, Any]:
    """Every setting that shapes the policy ``args`` trains (agents/policies.py stamps and checks them).

    Args:
        args: The training settings.

    Returns:
        :func:`agents.policies.settings` of them.
    """
    from agents.common import Protocol
    from jahs_gym.bundle import load_bundle

    budget = float(args.budget or load_bundle(args.task).manifest.default_budget_s)
    proto = Protocol(task=args.task, budget=budget, max_steps=args.max_steps, noise=args.noise,
                     continuation=args.continuation)
    env = policies.env_kwargs(proto, ALGOS[args.algo])
    return policies.settings(args.algo, env, model_kwargs(args.algo), args.n_envs, args.total_timesteps, args.seed)


def policy_file(args: Args) -> Path:
    """Where the policy ``args`` trains is saved.

    Args:
        args: The training settings.

    Returns:
        ALGO-DIGEST.zip in ``args.out`` (or the default policy folder).
    """
    return policies.policy_path(Path(args.out) if args.out else policies.default_policy_dir(), policy_settings(args))


def train(args: Args) -> Path:
    """Train the policy and save it with its signed stamp.

    Args:
        args: The training settings.

    Returns:
        The saved zip's path.
    """
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from jahs_gym.envs import JAHSEnv

    torch.set_num_threads(1)
    s = policy_settings(args)
    # 1. environments: exactly the stamped env kwargs
    venv = make_vec_env(lambda: JAHSEnv(**s["env"]), n_envs=args.n_envs, seed=args.seed)
    # 2. model
    tb = args.tensorboard if args.tensorboard and importlib.util.find_spec("tensorboard") else None
    kw = model_kwargs(args.algo)
    model = getattr(sb3, args.algo.upper())(kw.pop("policy"), venv, seed=args.seed, verbose=0, device="cpu",
                                            tensorboard_log=tb, **kw)
    # 3. training
    model.learn(total_timesteps=args.total_timesteps, progress_bar=importlib.util.find_spec("rich") is not None)
    # 4. saving, with the signed stamp
    path = policies.save(model, Path(args.out) if args.out else policies.default_policy_dir(), s)
    print(f"saved {path} after {args.total_timesteps} steps")
    return path


if __name__ == "__main__":
    train(parse())
