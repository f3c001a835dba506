"""Regularized evolution (Real et al., 2019) at full fidelity: tournament selection, one mutation, age out."""

from __future__ import annotations

import collections
import math

import numpy as np

from agents.common import FULL, Recorder, evaluate, max_epoch_index, random_config
from jahs_gym.space import ACTIVATIONS, LR_RANGE, OP_KEYS, OPS, WD_RANGE, Config


def mutate(cfg: Config, rng: np.random.Generator) -> Config:
    """One mutation: another value of one op, Activation or TrivialAugment, or a log-normal step (sd 0.5) of
    LearningRate or WeightDecay, clipped to its range.

    Args:
        cfg: The parent.
        rng: The random generator.

    Returns:
        The child.
    """
    d = cfg.as_dict()
    key = ["op", "Activation", "TrivialAugment", "LearningRate", "WeightDecay"][int(rng.integers(5))]
    if key == "op":
        k = OP_KEYS[int(rng.integers(6))]
        d[k] = int(rng.choice([o for o in range(len(OPS)) if o != d[k]]))
    elif key == "Activation":
        d[key] = str(rng.choice([a for a in ACTIVATIONS if a != d[key]]))
    elif key == "TrivialAugment":
        d[key] = not d[key]
    else:
        lo, hi = LR_RANGE if key == "LearningRate" else WD_RANGE
        d[key] = float(np.clip(math.exp(math.log(d[key]) + rng.normal(0, 0.5)), lo, hi))
    return Config.from_dict(d)


class RegularizedEvolution:
    """Regularized evolution at full fidelity and the last epoch.

    Args:
        population: Configs kept alive (the first ones are random).
        sample: Tournament size: the best of this many random members is the parent.
    """

    name = "evolution"
    action_type = "dict"

    def __init__(self, population: int = 10, sample: int = 3) -> None:
        self.population, self.sample = population, sample

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Evolve until the episode ends.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        top = max_epoch_index(env)
        pop: collections.deque = collections.deque()
        while True:
            if len(pop) < self.population:
                child = random_config(rng)
            else:
                picks = [pop[int(i)] for i in rng.choice(len(pop), self.sample, replace=False)]
                child = mutate(max(picks, key=lambda p: p[1])[0], rng)
            acc = evaluate(env, child, FULL, top)
            if acc is None:
                return
            pop.append((child, acc))
            if len(pop) > self.population:
                pop.popleft()  # the oldest dies
