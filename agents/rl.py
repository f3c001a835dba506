"""Stable-Baselines3 policies (PPO, A2C, DQN), trained on JAHS-v0 and then evaluated as optimisers."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.common import Recorder

ALGOS = {"ppo": "multidiscrete", "a2c": "multidiscrete", "dqn": "discrete"}


class SB3Agent:
    """Runs a saved policy, sampling its actions (a deterministic policy would repeat itself).

    ``args`` (agents.train_rl.Args) says which policy: the one trained with exactly those settings, loaded only
    when its signed stamp and sha256 verify (agents/policies.py); otherwise a PolicyError says why.

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
        args: The policy's ``agents.train_rl.Args``.

    Raises:
        ValueError: An unknown ``algo``.
    """

    def __init__(self, algo: str, args: Any) -> None:
        if algo not in ALGOS:
            raise ValueError(f"algo={algo!r}; allowed: {list(ALGOS)}")
        self.algo, self.args = algo, args
        self.name, self.action_type = algo, ALGOS[algo]
        self._model = None

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Load the policy (once) and step with it until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions for ppo and a2c, ``discrete`` actions).
            rng: The agent's random generator.
        """
        import torch

        from agents import policies
        from agents.train_rl import policy_file, policy_settings

        torch.set_num_threads(1)
        if self._model is None:
            self._model = policies.load(policy_file(self.args), policy_settings(self.args))
        self._model.set_random_seed(int(rng.integers(2**31)))
        obs = env.obs
        while not env.done:
            action, _ = self._model.predict(obs, deterministic=self.algo == "dqn")
            if self.algo == "dqn":
                action = int(action)  # DQN's greedy arm; exploration comes from its training
            obs, _, _, _, info = env.step(action)
            if info["over_budget"]:
                return
