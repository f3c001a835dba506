"""Optuna's TPE sampler (the peer most researchers reach for) at full fidelity. Needs ``jahs-gym[optuna]``.

On a JAHS-v0 episode (the harness: ``python -m agents.bench --agents optuna_tpe``) or on a Benchmark, either
with Optuna's own loop::

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(benchmark_objective(jahs_gym.Benchmark("fashion_mnist")), n_trials=100)

or under a simulated-time budget: ``agents.objective.on_benchmark(OptunaTPE(), bench, budget=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.common import FULL
from agents.objective import EnvObjective, Fid, Objective, metric_value, query
from jahs_gym.space import ACTIVATIONS, LR_RANGE, OP_KEYS, OPS, WD_RANGE, Config


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:
        raise ImportError("the optuna_tpe agent needs Optuna: pip install 'jahs-gym[optuna]'") from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def suggest_config(trial: Any) -> Config:
    """The trial's config: ops and Activation as categoricals, the two rates on a log scale.

    Args:
        trial: An Optuna trial.

    Returns:
        The config.
    """
    return Config(*(trial.suggest_categorical(k, list(range(len(OPS)))) for k in OP_KEYS),
                  Activation=trial.suggest_categorical("Activation", list(ACTIVATIONS)),
                  TrivialAugment=trial.suggest_categorical("TrivialAugment", [False, True]),
                  LearningRate=trial.suggest_float("LearningRate", *LR_RANGE, log=True),
                  WeightDecay=trial.suggest_float("WeightDecay", *WD_RANGE, log=True))


def benchmark_objective(bench: Any, fidelity: Fid = FULL, nepochs: int | None = None) -> Callable[[Any], float]:
    """An Optuna objective (maximise) on a Benchmark: the validation accuracy of the trial's config at
    ``fidelity`` (N, W, Resolution) after ``nepochs`` epochs.

    Args:
        bench: A :class:`jahs_gym.Benchmark`.
        fidelity: (N, W, Resolution).
        nepochs: Epochs (None: the task's max).

    Returns:
        ``objective(trial)`` for ``study.optimize``.
    """
    e = bench.max_epochs if nepochs is None else nepochs

    def objective(trial: Any) -> float:
        return metric_value(query(bench, suggest_config(trial), fidelity, e), "valid_acc")
    return objective


class OptunaTPE:
    """Optuna's TPE sampler (seeded from the agent's rng) at full fidelity and the task's max epochs."""

    name = "optuna_tpe"
    action_type = "dict"

    def search(self, objective: Objective, rng: np.random.Generator) -> None:
        """Ask and tell trials until ``objective`` answers None (an ImportError naming the extra without Optuna).

        Args:
            objective: An :class:`agents.objective.EnvObjective` or :class:`agents.objective.BenchmarkObjective`.
            rng: The agent's random generator.
        """
        optuna = _optuna()
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=int(rng.integers(2**31))))
        while True:
            trial = study.ask()
            acc = objective(suggest_config(trial), FULL, None)
            if acc is None:
                return
            study.tell(trial, acc)

    def run(self, env: Any, rng: np.random.Generator) -> None:
        """Search on a JAHS-v0 episode.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        self.search(EnvObjective(env), rng)
