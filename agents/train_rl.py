"""Train an SB3 policy (PPO, A2C or DQN) on JAHS-v0 episodes and save it.

    python -m agents.train_rl --algo ppo --total-timesteps 20000 --out policies

Reads top to bottom: arguments, environment, model, training, saving. Logs to TensorBoard when the
tensorboard package is installed (``--tensorboard DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Args:
    algo: str = "ppo"  # ppo, a2c (multidiscrete actions) or dqn (discrete arms)
    task: str = "fashion_mnist"  # installed task (see `jahs-gym tasks`)
    total_timesteps: int = 8192  # environment steps of training
    n_envs: int = 4  # parallel training episodes (SB3 DummyVecEnv)
    seed: int = 0  # training seed
    budget: float = 0.0  # simulated seconds per episode; 0: the bundle's default
    out: str = "policies"  # folder; the policy is saved as OUT/ALGO.zip
    tensorboard: str = ""  # TensorBoard log folder ("" = off; needs the tensorboard package)


def parse(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                       help=f"(default: {f.default!r})")
    return Args(**vars(p.parse_args(argv)))


def policy_stamp(algo: str, task: str, budget: float) -> dict:
    """What a saved policy was trained for: algorithm, task, the bundle (table checksum and manifest digest: a
    refit changes what the env answers) and the budget."""
    from jahs_gym.bundle import load_bundle

    bundle = load_bundle(task)
    return {"algo": algo, "task": task, "table_sha256": bundle.manifest.table.sha256,
            "bundle_digest": bundle.manifest.digest,
            "budget": float(budget or bundle.manifest.default_budget_s)}


def stale_policy(path: Path, stamp: dict) -> str | None:
    """Why the policy at ``path`` (ALGO.zip) does not fit ``stamp``; None when it does. A policy without its
    ALGO.json stamp, or stamped for another task, bundle or budget, is stale."""
    meta = Path(path).with_suffix(".json")
    if not meta.exists():
        return f"{meta} is missing (what the policy was trained for is unknown)"
    try:
        saved = json.loads(meta.read_text())
    except ValueError as e:
        return f"{meta} is not JSON ({e})"
    diff = [f"{k} {saved.get(k)!r} != {v!r}" for k, v in stamp.items() if saved.get(k) != v]
    return f"it was trained for another setting: {'; '.join(diff)}" if diff else None


def train(args: Args) -> Path:
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from agents.common import Protocol
    from agents.rl import ALGOS

    torch.set_num_threads(1)
    if args.algo not in ALGOS:
        raise ValueError(f"--algo {args.algo!r}; allowed: {list(ALGOS)}")
    # 1. environments: the harness's protocol, the action type this algorithm takes
    proto = Protocol(task=args.task, budget=args.budget or None)
    venv = make_vec_env(lambda: proto.make_env(ALGOS[args.algo]), n_envs=args.n_envs, seed=args.seed)
    # 2. model
    tb = args.tensorboard if args.tensorboard and importlib.util.find_spec("tensorboard") else None
    kw = {"n_steps": 256, "batch_size": 256} if args.algo == "ppo" else {}
    if args.algo == "dqn":
        kw = {"learning_starts": 256, "buffer_size": 50_000, "exploration_fraction": 0.5}
    model = getattr(sb3, args.algo.upper())("MlpPolicy", venv, seed=args.seed, verbose=0, device="cpu",
                                            tensorboard_log=tb, **kw)
    # 3. training
    model.learn(total_timesteps=args.total_timesteps, progress_bar=importlib.util.find_spec("rich") is not None)
    # 4. saving
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{args.algo}.zip")
    stamp = {**policy_stamp(args.algo, args.task, args.budget), "total_timesteps": args.total_timesteps,
             "seed": args.seed}
    (out / f"{args.algo}.json").write_text(json.dumps(stamp, indent=1) + "\n")
    print(f"saved {out / (args.algo + '.zip')} after {args.total_timesteps} steps")
    return out / f"{args.algo}.zip"


if __name__ == "__main__":
    train(parse())
