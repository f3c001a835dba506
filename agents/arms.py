"""The harness's agents on a table's arms (JAHS-v0 ``backend="table"`` or ``"surrogate_arms"``).

On the arm backends an action is a trained run of the table (a config at its one fidelity) and an epoch
index: ``MultiDiscrete([runs, n_epochs])``. Each agent keeps its algorithm and moves in that space:

* random: a uniform run at the last epoch;
* successive halving / Hyperband: uniform runs promoted through epoch rungs (1, 3 and 10 of 10 epochs: a run's
  epochs are the only fidelity it can vary), keeping the best 1/eta;
* evolution: tournament selection, and a mutation that moves to one of the ``neighbours`` runs nearest to the
  parent (distance: differing ops, activation, augmentation and fidelity values, plus log10 distances of
  LearningRate and WeightDecay);
* UCB and Thompson sampling: a pool of 256 (run, epoch) arms drawn from the episode's seed (:class:`ArmPool`),
  as the surrogate backend's ``discrete`` action type draws (config, fidelity, epoch) arms;
* Optuna's TPE: it proposes the JAHS hyperparameters and fidelity; the nearest run is evaluated.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.common import Recorder
from jahs_gym.space import ACTIVATIONS, LR_RANGE, N_VALUES, OP_KEYS, OPS, RESOLUTIONS, W_VALUES, WD_RANGE

ARM_AGENTS = ("random", "successive_halving", "hyperband", "evolution", "ucb", "thompson", "optuna_tpe")
RUNG_SHARES = (0.0, 0.25, 1.0)  # shares of the last epoch index: epochs 1, 3, 10 of 10 (eta = 3 apart)


def _arms(env: gym.Env) -> Any:
    arms = env.unwrapped.task.arms
    if arms is None:
        raise ValueError("this agent runs on a table's arms: JAHSEnv(backend='table' or 'surrogate_arms')")
    return arms


def _features(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(categorical codes (runs, 11), log10 LearningRate and WeightDecay (runs, 2)) of the runs' columns."""
    cat = np.stack([*columns[:8], *(np.searchsorted(v, c) for v, c in
                                    ((N_VALUES, columns[10]), (W_VALUES, columns[11]),
                                     (RESOLUTIONS, columns[12])))], axis=1).astype(np.int64)
    return cat, np.log10(np.stack([columns[8], columns[9]], axis=1))


class Neighbours:
    """Nearest runs of a table (for mutations and for snapping a proposal to a trained run).

    Args:
        env: A JAHS-v0 env on an arm backend.
    """

    def __init__(self, env: gym.Env) -> None:
        self.cat, self.num = _features(_arms(env).columns)

    def distance(self, cat: np.ndarray, num: np.ndarray) -> np.ndarray:
        """Each run's distance to a point: differing categorical values plus log10 distances of the two rates.

        Args:
            cat: The point's 11 categorical codes.
            num: Its log10 LearningRate and WeightDecay.

        Returns:
            One distance per run.
        """
        return (self.cat != cat).sum(axis=1) + np.abs(self.num - num).sum(axis=1)

    def nearest(self, cat: np.ndarray, num: np.ndarray, k: int = 1, exclude: int | None = None) -> np.ndarray:
        """The ``k`` runs nearest a point (ties: lower run first).

        Args:
            cat: The point's 11 categorical codes.
            num: Its log10 LearningRate and WeightDecay.
            k: How many.
            exclude: A run left out (e.g. the parent).

        Returns:
            Their run indices, nearest first.
        """
        d = self.distance(cat, num)
        if exclude is not None:
            d[exclude] = np.inf
        return np.argsort(d, kind="stable")[:k]


def evaluate_run(env: Recorder, run: int, epoch_index: int) -> float | None:
    """Valid accuracy of a run at an epoch index, or None when the episode ended.

    Args:
        env: The recorded episode (``multidiscrete`` actions).
        run: The run's index.
        epoch_index: Index into the env's epoch grid.

    Returns:
        The validation accuracy in percent, or None.
    """
    if env.done:
        return None
    _, _, _, _, info = env.step(np.array([run, epoch_index], dtype=np.int64))
    return None if info["over_budget"] else info["valid_acc"]


def _top(env: Recorder) -> int:
    return env.unwrapped.codec.n_epochs - 1


class ArmRandom:
    """Uniform runs at the last epoch until the episode ends."""

    name, action_type = "random", "multidiscrete"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Evaluate random runs until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The agent's random generator.
        """
        n, top = len(_arms(env)), _top(env)
        while evaluate_run(env, int(rng.integers(n)), top) is not None:
            pass


class ArmSuccessiveHalving:
    """Successive halving over the epoch rungs ``RUNG_SHARES``, brackets of eta^2 uniform runs.

    Args:
        eta: Keep the best 1/eta at each rung.
    """

    name, action_type = "successive_halving", "multidiscrete"

    def __init__(self, eta: int = 3) -> None:
        self.eta = eta

    def bracket(self, env: Recorder, rng: np.random.Generator, n: int, start: int) -> bool:
        """One bracket of ``n`` uniform runs from rung ``start``.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The random generator.
            n: Runs on the first rung.
            start: The first rung.

        Returns:
            False when the episode ended inside the bracket, else True.
        """
        runs = [int(r) for r in rng.integers(len(_arms(env)), size=n)]
        for share in RUNG_SHARES[start:]:
            ei = round(share * _top(env))
            scores = []
            for r in runs:
                acc = evaluate_run(env, r, ei)
                if acc is None:
                    return False
                scores.append(acc)
            runs = [runs[i] for i in np.argsort(scores)[::-1][:max(1, len(runs) // self.eta)]]
        return True

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Run brackets until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The agent's random generator.
        """
        while self.bracket(env, rng, self.eta ** (len(RUNG_SHARES) - 1), 0):
            pass


class ArmHyperband(ArmSuccessiveHalving):
    """Hyperband over the epoch rungs: loops of brackets that start on ever higher rungs."""

    name = "hyperband"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Run Hyperband loops until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The agent's random generator.
        """
        s_max = len(RUNG_SHARES) - 1
        while True:
            for s in range(s_max, -1, -1):
                if not self.bracket(env, rng, math.ceil((s_max + 1) / (s + 1) * self.eta ** s), s_max - s):
                    return


class ArmEvolution:
    """Regularized evolution on the runs: a mutation moves to one of the parent's nearest runs.

    Args:
        population: Runs kept alive (the first ones uniform).
        sample: Tournament size.
        neighbours: A child is one of the parent's this many nearest runs.
    """

    name, action_type = "evolution", "multidiscrete"

    def __init__(self, population: int = 10, sample: int = 3, neighbours: int = 8) -> None:
        self.population, self.sample, self.neighbours = population, sample, neighbours

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Evolve until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The agent's random generator.
        """
        near, n, top = Neighbours(env), len(_arms(env)), _top(env)
        pop: collections.deque = collections.deque()
        while True:
            if len(pop) < self.population:
                child = int(rng.integers(n))
            else:
                picks = [pop[int(i)] for i in rng.choice(len(pop), self.sample, replace=False)]
                parent = max(picks, key=lambda p: p[1])[0]
                close = near.nearest(near.cat[parent], near.num[parent], self.neighbours, exclude=parent)
                child = int(rng.choice(close))
            acc = evaluate_run(env, child, top)
            if acc is None:
                return
            pop.append((child, acc))
            if len(pop) > self.population:
                pop.popleft()


class ArmTPE:
    """Optuna's TPE proposes hyperparameters and fidelity; the nearest run is evaluated at the last epoch."""

    name, action_type = "optuna_tpe", "multidiscrete"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Ask and tell trials until the episode ends.

        Args:
            env: The recorded episode (``multidiscrete`` actions).
            rng: The agent's random generator.

        Raises:
            ImportError: Optuna is not installed (naming the extra that installs it).
        """
        try:
            import optuna
        except ImportError as e:
            raise ImportError("the optuna_tpe agent needs Optuna: pip install 'jahs-gym[optuna]'") from e
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=int(rng.integers(2**31))))
        near, top = Neighbours(env), _top(env)
        while True:
            t = study.ask()
            cat = np.array([*(t.suggest_categorical(k, list(range(len(OPS)))) for k in OP_KEYS),
                            t.suggest_categorical("Activation", list(range(len(ACTIVATIONS)))),
                            t.suggest_categorical("TrivialAugment", [0, 1]),
                            t.suggest_categorical("N", list(range(3))), t.suggest_categorical("W", list(range(3))),
                            t.suggest_categorical("Resolution", list(range(3)))])
            num = np.log10([t.suggest_float("LearningRate", *LR_RANGE, log=True),
                            t.suggest_float("WeightDecay", *WD_RANGE, log=True)])
            acc = evaluate_run(env, int(near.nearest(cat, num)[0]), top)
            if acc is None:
                return
            study.tell(t, acc)


class ArmPool(gym.ActionWrapper):
    """``Discrete(n_arms)`` over a pool of (run, epoch index) arms drawn with ``seed`` (for the bandits).

    Args:
        env: A JAHS-v0 env on an arm backend (``multidiscrete`` actions).
        n_arms: Arms in the pool (drawn with replacement).
        seed: The pool's seed.
    """

    def __init__(self, env: gym.Env, n_arms: int = 256, seed: int = 0) -> None:
        super().__init__(env)
        rng = np.random.default_rng(seed)
        self.pool = np.stack([rng.integers(len(_arms(env)), size=n_arms),
                              rng.integers(env.unwrapped.codec.n_epochs, size=n_arms)], axis=1)
        self.action_space = spaces.Discrete(n_arms)

    def action(self, action: Any) -> np.ndarray:
        """The env's action of an arm.

        Args:
            action: The arm's index.

        Returns:
            ``[run, epoch index]``.
        """
        return self.pool[int(action)]


def make_arm_agent(name: str) -> Any:
    """The arm-space version of a harness agent (the bandits are the harness's own, on an :class:`ArmPool`).

    Args:
        name: One of ``ARM_AGENTS``.

    Returns:
        A fresh agent.

    Raises:
        ValueError: ``name`` has no arm-space version.
    """
    if name in ("ucb", "thompson"):
        from agents.bandits import UCB1, ThompsonSampling
        return UCB1() if name == "ucb" else ThompsonSampling()
    table = {"random": ArmRandom, "successive_halving": ArmSuccessiveHalving, "hyperband": ArmHyperband,
             "evolution": ArmEvolution, "optuna_tpe": ArmTPE}
    if name not in table:
        raise ValueError(f"agent {name!r} has no arm-space version; the arm backends run: {list(ARM_AGENTS)}")
    return table[name]()
