"""SMAC3 (Lindauer et al., 2022): Bayesian optimisation with a random forest, black-box and multi-fidelity.

Needs ``pip install 'jahs-gym[smac]'``. Two agents, both through SMAC's ask/tell interface on the 11 config
hyperparameters (``agents.objective.config_space``):

* ``smac``: the HPO facade (random forest, log-EI, Sobol initial design of ``n_initial`` configs) at full
  fidelity (N=5, W=16, Resolution=1, the task's max epochs);
* ``smac_mf``: the multi-fidelity facade (the same model inside Hyperband brackets, eta = 3: BOHB-style),
  the fidelity being the epoch count from 1 to the max (SMAC's budgets 1.11, 3.33, 10 rounded to whole epochs).

SMAC minimises: its cost is 100 - validation accuracy. Its output goes to a temporary folder removed afterwards.
On a Benchmark with SMAC's own loop, :func:`benchmark_target` is the ``target_function`` to give a facade::

    smac = HyperparameterOptimizationFacade(Scenario(config_space(0), n_trials=100), benchmark_target(bench))
    incumbent = smac.optimize()
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.common import FULL
from agents.objective import EnvObjective, Objective, config_from, config_space, metric_value, query


@dataclass
class Args:
    """The SMAC agents' settings.

    Attributes:
        n_initial: Initial design size (SMAC's own rule for 100 trials: 10 per hyperparameter, at most 25%).
        eta: Hyperband's reduction factor (smac_mf).
    """

    n_initial: int = 25  # initial design size (SMAC's own rule for 100 trials: 10 per hyperparameter, <= 25%)
    eta: int = 3  # Hyperband's reduction factor (smac_mf)


def _smac() -> Any:
    try:
        import smac
    except ImportError as e:
        raise ImportError("the smac agents need SMAC3: pip install 'jahs-gym[smac]'") from e
    return smac


def epochs_of(budget: float | None, max_epochs: int) -> int:
    """SMAC's real-valued budget as a whole epoch count in 1..max_epochs.

    Args:
        budget: SMAC's budget (None: the max).
        max_epochs: The task's max epochs.

    Returns:
        The epoch count (rounded, then clipped).
    """
    return max_epochs if budget is None else int(min(max(round(float(budget)), 1), max_epochs))


def benchmark_target(bench: Any, fidelity: tuple[int, int, float] = FULL) -> Callable[..., float]:
    """SMAC's ``target_function(config, seed, budget=None)`` on a Benchmark: 100 - validation accuracy after
    ``budget`` epochs (rounded; None: the task's max) at ``fidelity`` (N, W, Resolution).

    Args:
        bench: A :class:`jahs_gym.Benchmark`.
        fidelity: (N, W, Resolution).

    Returns:
        The target function.
    """
    def train(config: Any, seed: int = 0, budget: float | None = None) -> float:
        e = epochs_of(budget, bench.max_epochs)
        return 100.0 - metric_value(query(bench, config_from(config), fidelity, e), "valid_acc")
    return train


class SMACBlackBox:
    """SMAC's HPO facade at full fidelity and the task's max epochs.

    Args:
        args: Its settings (None: :class:`Args`'s defaults).
    """

    name = "smac"
    action_type = "dict"
    multi_fidelity = False

    def __init__(self, args: Args | None = None) -> None:
        self.args = args or Args()

    def _facade(self, smac: Any, space: Any, top: int, seed: int, out: str) -> Any:
        scenario = smac.Scenario(space, deterministic=True, n_trials=10**9, seed=seed, output_directory=out)
        init = smac.HyperparameterOptimizationFacade.get_initial_design(scenario, n_configs=self.args.n_initial)
        return smac.HyperparameterOptimizationFacade(scenario, target_function=_never, initial_design=init,
                                                     overwrite=True, logging_level=40)

    def search(self, objective: Objective, rng: np.random.Generator) -> None:
        """Ask and tell SMAC's trials until ``objective`` answers None (an ImportError naming the extra without
        SMAC3; smac_mf: a ValueError for a task of fewer than 2 epochs).

        Args:
            objective: An :class:`agents.objective.EnvObjective` or :class:`agents.objective.BenchmarkObjective`.
            rng: The agent's random generator.
        """
        smac = _smac()
        from smac.runhistory.dataclasses import TrialValue

        top = objective.max_epochs
        with tempfile.TemporaryDirectory(prefix="smac-") as out:
            opt = self._facade(smac, config_space(int(rng.integers(2**31))), top, int(rng.integers(2**31)), out)
            while True:
                info = opt.ask()
                e = epochs_of(info.budget, top) if self.multi_fidelity else top
                acc = objective(config_from(info.config), FULL, e)
                if acc is None:
                    return
                opt.tell(info, TrialValue(cost=100.0 - acc))

    def run(self, env: Any, rng: np.random.Generator) -> None:
        """Search on a JAHS-v0 episode.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        self.search(EnvObjective(env), rng)


class SMACMultiFidelity(SMACBlackBox):
    """SMAC's multi-fidelity facade (Hyperband brackets over the epoch count, BOHB-style) at full network fidelity."""

    name = "smac_mf"
    multi_fidelity = True

    def _facade(self, smac: Any, space: Any, top: int, seed: int, out: str) -> Any:
        if top < 2:
            raise ValueError(f"the smac_mf agent varies the epoch count: a task of {top} epoch(s); allowed: 2 or more")
        mf = smac.MultiFidelityFacade
        scenario = smac.Scenario(space, deterministic=True, n_trials=10**9, seed=seed, output_directory=out,
                                 min_budget=1, max_budget=top)
        return mf(scenario, target_function=_never, intensifier=mf.get_intensifier(scenario, eta=self.args.eta),
                  initial_design=mf.get_initial_design(scenario, n_configs=self.args.n_initial), overwrite=True,
                  logging_level=40)


def _never(config: Any, seed: int = 0, budget: float | None = None) -> float:
    """The facade's target function; never called (the agent evaluates through ask/tell)."""
    raise RuntimeError("the smac agents evaluate through ask/tell")
