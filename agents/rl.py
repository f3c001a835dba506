"""Stable-Baselines3 policies (PPO, A2C, DQN), trained on JAHS-v0 and then evaluated as optimisers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.common import Recorder

ALGOS = {"ppo": "multidiscrete", "a2c": "multidiscrete", "dqn": "discrete"}


def load_policy(algo: str, path: Path):  # noqa: ANN201
    import stable_baselines3 as sb3

    if not Path(path).exists():
        raise FileNotFoundError(f"no saved {algo} policy at {path}; train one with "
                                f"`python -m agents.train_rl --algo {algo} --out {Path(path).parent}`")
    return getattr(sb3, algo.upper()).load(str(path), device="cpu")


class SB3Agent:
    """Runs a saved policy, sampling its actions (a deterministic policy would repeat itself)."""

    def __init__(self, algo: str, path: Path) -> None:
        if algo not in ALGOS:
            raise ValueError(f"algo={algo!r}; allowed: {list(ALGOS)}")
        self.algo, self.path = algo, Path(path)
        self.name, self.action_type = algo, ALGOS[algo]
        self._model = None

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        import torch

        torch.set_num_threads(1)
        if self._model is None:
            self._model = load_policy(self.algo, self.path)
        self._model.set_random_seed(int(rng.integers(2**31)))
        obs = env.obs
        while not env.done:
            action, _ = self._model.predict(obs, deterministic=self.algo == "dqn")
            if self.algo == "dqn":
                action = int(action)  # DQN's greedy arm; exploration comes from its training
            obs, _, _, _, info = env.step(action)
            if info["over_budget"]:
                return
