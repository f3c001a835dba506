"""UCB1 and Thompson sampling over the ``discrete`` action type's fixed pool of (config, fidelity) arms."""

from __future__ import annotations

import math

import numpy as np

from agents.common import Recorder


class UCB1:
    """UCB1 over the env's pool of arms: each arm once in random order, then the highest upper confidence bound.

    Args:
        c: Exploration weight on the [0, 1] accuracy scale.
    """

    name = "ucb"
    action_type = "discrete"
    arms_per_seed = True  # the harness draws the arm pool from the episode's seed

    def __init__(self, c: float = 0.1) -> None:
        self.c = c  # exploration weight on the [0, 1] accuracy scale

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Pull arms until the episode ends.

        Args:
            env: The recorded episode (``discrete`` actions).
            rng: The agent's random generator.
        """
        k = env.action_space.n
        n, total = np.zeros(k), np.zeros(k)
        order = rng.permutation(k)  # untried arms first, in a random order
        t = 0
        while not env.done:
            t += 1
            if t <= k:
                arm = int(order[t - 1])
            else:
                ucb = total / n + self.c * np.sqrt(2 * math.log(t) / n)
                arm = int(np.argmax(ucb))
            _, _, _, _, info = env.step(arm)
            if info["over_budget"]:
                return
            n[arm] += 1
            total[arm] += info["valid_acc"] / 100


class ThompsonSampling:
    """Thompson sampling with a Gaussian prior and likelihood on each arm's mean accuracy (on the [0, 1] scale).

    Args:
        prior_mean: The prior's mean.
        prior_sd: The prior's standard deviation.
        noise_sd: The standard deviation of one evaluation around its arm's mean.
    """

    name = "thompson"
    action_type = "discrete"
    arms_per_seed = True

    def __init__(self, prior_mean: float = 0.5, prior_sd: float = 0.3, noise_sd: float = 0.02) -> None:
        self.m0, self.s0, self.sn = prior_mean, prior_sd, noise_sd

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Pull arms until the episode ends.

        Args:
            env: The recorded episode (``discrete`` actions).
            rng: The agent's random generator.
        """
        k = env.action_space.n
        n, total = np.zeros(k), np.zeros(k)
        while not env.done:
            prec = 1 / self.s0**2 + n / self.sn**2  # Gaussian posterior of each arm's mean accuracy
            mean = (self.m0 / self.s0**2 + total / self.sn**2) / prec
            arm = int(np.argmax(rng.normal(mean, 1 / np.sqrt(prec))))
            _, _, _, _, info = env.step(arm)
            if info["over_budget"]:
                return
            n[arm] += 1
            total[arm] += info["valid_acc"] / 100
