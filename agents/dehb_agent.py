"""DEHB (Awad, Mallik & Hutter, 2021): differential evolution inside Hyperband brackets, the ``dehb`` package.

Needs ``pip install 'jahs-gym[dehb]'``. The fidelity is the epoch count at full network fidelity (N=5, W=16,
Resolution=1), from 1 to the task's max epochs, eta = 3: DEHB's real-valued fidelities (1.11, 3.33, 10 for
10 epochs) are rounded to whole epochs. DEHB minimises, so its fitness is 100 - validation accuracy and its
cost the epochs asked for. It runs through DEHB's ask/tell interface, one evaluation at a time (n_workers=1);
its log file goes to a temporary folder that is removed afterwards.

On a Benchmark with DEHB's own loop, :func:`benchmark_objective` is the ``f`` to give it::

    dehb = DEHB(f=benchmark_objective(bench), cs=config_space(0), min_fidelity=1, max_fidelity=bench.max_epochs,
                n_workers=1, output_path="dehb_out")
    dehb.run(fevals=100)
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.common import FULL
from agents.objective import EnvObjective, Objective, config_from, config_space, metric_value, query


@dataclass
class Args:
    """DEHB's settings (DEHB's defaults but eta).

    Attributes:
        eta: Hyperband's reduction factor.
        mutation_factor: DE's F.
        crossover_prob: DE's CR.
        strategy: DE's mutation and crossover.
    """

    eta: int = 3  # Hyperband's reduction factor
    mutation_factor: float = 0.5  # DE's F (DEHB's default)
    crossover_prob: float = 0.5  # DE's CR (DEHB's default)
    strategy: str = "rand1_bin"  # DE's mutation and crossover (DEHB's default)


def _dehb() -> Any:
    try:
        from dehb import DEHB
    except ImportError as e:
        raise ImportError("the dehb agent needs DEHB: pip install 'jahs-gym[dehb]'") from e
    return DEHB


def epochs_of(fidelity: float, max_epochs: int) -> int:
    """DEHB's real-valued fidelity as a whole epoch count in 1..max_epochs.

    Args:
        fidelity: DEHB's fidelity.
        max_epochs: The task's max epochs.

    Returns:
        The epoch count (rounded, then clipped).
    """
    return int(min(max(round(float(fidelity)), 1), max_epochs))


def benchmark_objective(bench: Any, network: tuple[int, int, float] = FULL) -> Callable[..., dict[str, Any]]:
    """DEHB's ``f(config, fidelity)`` on a Benchmark: fitness 100 - validation accuracy after ``fidelity`` epochs
    (rounded) of the ``network`` fidelity (N, W, Resolution); cost the predicted runtime.

    Args:
        bench: A :class:`jahs_gym.Benchmark` that answers valid_acc and runtime.
        network: (N, W, Resolution).

    Returns:
        ``f(config, fidelity, **kwargs)`` returning DEHB's dict of fitness, cost and info.
    """
    def f(config: Any, fidelity: float, **kwargs: Any) -> dict[str, Any]:
        e = epochs_of(fidelity, bench.max_epochs)
        row = query(bench, config_from(config), network, e)
        return {"fitness": 100.0 - metric_value(row, "valid_acc"), "cost": metric_value(row, "runtime"),
                "info": {"epochs": e}}
    return f


class DEHBAgent:
    """DEHB over the epoch count at full network fidelity, one evaluation at a time.

    Args:
        args: Its settings (None: :class:`Args`'s defaults).
    """

    name = "dehb"
    action_type = "dict"

    def __init__(self, args: Args | None = None) -> None:
        self.args = args or Args()

    def search(self, objective: Objective, rng: np.random.Generator) -> None:
        """Ask and tell DEHB's jobs until ``objective`` answers None (an ImportError naming the extra without DEHB).

        Args:
            objective: An :class:`agents.objective.EnvObjective` or :class:`agents.objective.BenchmarkObjective`.
            rng: The agent's random generator.

        Raises:
            ValueError: The task has fewer than 2 epochs (nothing to vary).
        """
        DEHB = _dehb()  # noqa: N806
        from loguru import logger

        top = objective.max_epochs
        if top < 2:
            raise ValueError(f"the dehb agent varies the epoch count: a task of {top} epoch(s); allowed: 2 or more")
        handlers = set(getattr(logger._core, "handlers", {}))  # DEHB adds a file sink per instance: removed below
        with tempfile.TemporaryDirectory(prefix="dehb-") as out, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # DEHB 0.1.1 calls ConfigSpace 0.x methods
            try:
                dehb = DEHB(cs=config_space(int(rng.integers(2**31))), min_fidelity=1, max_fidelity=top,
                            eta=self.args.eta, mutation_factor=self.args.mutation_factor,
                            crossover_prob=self.args.crossover_prob, strategy=self.args.strategy, n_workers=1,
                            seed=int(rng.integers(2**31)), output_path=out, save_freq=None)
                while True:
                    job = dehb.ask()
                    e = epochs_of(job["fidelity"], top)
                    acc = objective(config_from(job["config"]), FULL, e)
                    if acc is None:
                        return
                    dehb.tell(job, {"fitness": 100.0 - acc, "cost": float(e)})
            finally:
                for h in set(getattr(logger._core, "handlers", {})) - handlers:
                    logger.remove(h)

    def run(self, env: Any, rng: np.random.Generator) -> None:
        """Search on a JAHS-v0 episode.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        self.search(EnvObjective(env), rng)
