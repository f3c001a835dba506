"""Environment speed, side by side in one process.

1. A JAHS-v0 step against a CartPole-v1 step (both unwrapped, random actions sampled beforehand).
2. The native vector env with many sub-environments: steps per second (one batched surrogate call a step); and
   with one sub-environment, against the single env (which runs the same episode core on Python scalars).
3. The same JAHS-v0 env stepping through the naive per-metric XGBoost predictor: ratio.

    python benchmarks/env_speed.py [--task fashion_mnist] [--num-envs 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np


def time_steps(env: gym.Env, actions: list, min_time: float = 0.5) -> float:
    """Seconds per step over ``actions`` (repeated until ``min_time``), resetting at episode ends."""
    env.reset(seed=0)
    n = 0
    t0 = time.perf_counter()
    while True:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        n += len(actions)
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n


class _NaiveRows:
    """The naive per-metric predictor behind the interface of the env's own row predictor (x, xv, raw, y, scaled,
    call); the observation entries by the env's scaler, as the env's own row predictor makes them."""

    def __init__(self, naive: Any, rows: Any) -> None:
        self.naive, self.x, self.xv, self.raw, self.y = naive, rows.x, rows.xv, rows.raw, rows.y
        self.scaler, self.scaled = rows.scaler, rows.scaled

    def __call__(self) -> np.ndarray:
        self.raw[:] = self.naive.predict_raw(self.x[None, :])[0]
        self.y[:] = self.naive.finish(self.raw[None, :])[0]
        self.scaled[:] = self.scaler(self.raw[None, :])[0]
        return self.y


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", help="installed task (see `jahs-gym tasks`)")
    p.add_argument("--num-envs", type=int, default=1024, help="sub-environments of the vector env")
    p.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds (median is reported)")
    args = p.parse_args(argv)

    import jahs_gym  # noqa: F401
    from jahs_gym.envs import JAHSEnv, JAHSVectorEnv

    jahs = JAHSEnv(task=args.task, budget=1e12, max_steps=100)
    cart = gym.make("CartPole-v1").unwrapped
    jahs.action_space.seed(0)
    cart.action_space.seed(0)
    ja = [jahs.action_space.sample() for _ in range(500)]
    ca = [cart.action_space.sample() for _ in range(500)]
    tj, tc = [], []
    for _ in range(args.rounds):
        tj.append(time_steps(jahs, ja))
        tc.append(time_steps(cart, ca))
    tj_m, tc_m = float(np.median(tj)), float(np.median(tc))
    print(f"task {args.task}: {jahs.task.forest.n_trees} trees, backend {jahs.task.forest.backend}")
    print(f"single step: JAHS-v0 {tj_m * 1e6:.1f} us | CartPole-v1 {tc_m * 1e6:.1f} us | "
          f"ratio {tj_m / tc_m:.2f}x CartPole (goal <= 5x, stretch <= 3x)")

    n = args.num_envs
    vec = JAHSVectorEnv(num_envs=n, task=args.task, budget=1e12, max_steps=100)
    vec.action_space.seed(0)
    va = [vec.action_space.sample() for _ in range(20)]
    tv = []
    for _ in range(args.rounds):
        vec.reset(seed=0)
        t0 = time.perf_counter()
        for a in va:
            vec.step(a)
        tv.append((time.perf_counter() - t0) / len(va))
    tv_m = float(np.median(tv))
    print(f"vector env, {n} sub-envs: {tv_m * 1e3:.2f} ms a step = {n / tv_m:,.0f} env steps/s (goal >= 100,000)")

    # why JAHSEnv runs the episode core on Python scalars: the same core on arrays of one sub-env
    one = JAHSVectorEnv(num_envs=1, task=args.task, budget=1e12, max_steps=100)
    one.action_space.seed(0)
    oa = [one.action_space.sample() for _ in range(200)]
    to = []
    for _ in range(args.rounds):
        one.reset(seed=0)
        t0 = time.perf_counter()
        for a in oa:
            one.step(a)
        to.append((time.perf_counter() - t0) / len(oa))
    print(f"vector env, 1 sub-env: {float(np.median(to)) * 1e6:.1f} us a step "
          f"({float(np.median(to)) / tj_m:.0f}x the single env's step)")

    naive_env = JAHSEnv(task=args.task, budget=1e12, max_steps=100)
    naive = naive_env.task.bundle.naive_predictor(naive_env.task.metrics)
    naive_env.core._rows = _NaiveRows(naive, naive_env.core._rows)
    tn = []
    for _ in range(max(1, args.rounds // 2)):
        tn.append(time_steps(naive_env, ja[:50], min_time=0.3))
        tj.append(time_steps(jahs, ja))
    tn_m = float(np.median(tn))
    print(f"same env through the naive per-metric XGBoost predictor: {tn_m * 1e6:.1f} us a step; "
          f"fast predictor {float(np.median(tj)) * 1e6:.1f} us; ratio {tn_m / float(np.median(tj)):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
