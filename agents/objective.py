"""One evaluation interface for the optimisers that come from outside RL (REINFORCE, DEHB, SMAC, Optuna TPE).

An agent's ``search(objective, rng)`` asks ``objective(config, (N, W, Resolution), epochs)`` for the validation
accuracy of a config at a fidelity, until the objective answers None (budget or steps spent). Two objectives:

* :class:`EnvObjective`: steps a JAHS-v0 episode (what the harness runs: ``python -m agents.bench``);
* :class:`BenchmarkObjective`: queries a :class:`jahs_gym.Benchmark` directly under a budget of simulated
  seconds (the predicted ``runtime``), and keeps the trajectory. :func:`on_benchmark` runs any such agent on a
  Benchmark in one call::

      from agents.reinforce import Reinforce
      from agents.objective import on_benchmark
      trajectory = on_benchmark(Reinforce(), jahs_gym.Benchmark("fashion_mnist"), budget=20_000, seed=0)

Costs on a Benchmark follow the harness's default protocol: a config trained further at the same (N, W,
Resolution) pays only the extra epochs (continuation); a repeat of what was already paid for costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from agents.common import FULL, Recorder, dict_action
from jahs_gym.space import Config

Fid = tuple[int, int, float]
Objective = Callable[[Config, Fid, "int | None"], "float | None"]  # EnvObjective, BenchmarkObjective


def config_space(seed: int | None = None) -> Any:
    """The 11 configuration hyperparameters as a ConfigSpace space (needs ``jahs-gym[configspace]``).

    Args:
        seed: The space's sampling seed (None: unseeded).

    Returns:
        A ``ConfigSpace.ConfigurationSpace``.
    """
    from jahs_gym.configspace import search_space

    return search_space(seed=seed)


def config_from(sample: Any) -> Config:
    """A Config from a ConfigSpace sample (or any mapping of the config keys).

    Args:
        sample: The sample.

    Returns:
        The Config (``Config.from_dict`` validates it).
    """
    return Config.from_dict(dict(sample))


class EnvObjective:
    """Evaluations as steps of a JAHS-v0 episode (dict actions); the epoch count snaps to the env's epoch grid.

    Calling it with (config, (N, W, Resolution), epochs or None for the last) returns the validation accuracy,
    or None once the episode is over.

    Args:
        env: The recorded episode, with the ``dict`` action type.
    """

    def __init__(self, env: Recorder) -> None:
        self.env = env
        self.grid = np.asarray(env.unwrapped.task.epoch_grid)
        self.max_epochs = int(self.grid[-1])

    def __call__(self, cfg: Config, fid: Fid = FULL, epochs: int | None = None) -> float | None:
        if self.env.done:
            return None
        i = len(self.grid) - 1 if epochs is None else int(np.argmin(np.abs(self.grid - epochs)))
        _, _, _, _, info = self.env.step(dict_action(cfg, *fid, i))
        return None if info["over_budget"] else float(info["valid_acc"])


def metric_value(row: dict[str, float], name: str) -> float:
    """``row[name]`` in either spelling a Benchmark answers in (valid_acc, or JAHS-Bench-201's valid-acc).

    Args:
        row: One epoch's answer of a Benchmark.
        name: The metric, underscore spelling.

    Returns:
        The value.
    """
    return float(row[name] if name in row else row[name.replace("_", "-")])


def query(bench: Any, cfg: Config, fid: Fid, epochs: int) -> dict[str, float]:
    """The Benchmark's answer for ``cfg`` at (N, W, Resolution) ``fid`` after ``epochs`` epochs.

    Args:
        bench: A :class:`jahs_gym.Benchmark`.
        cfg: The config.
        fid: (N, W, Resolution).
        epochs: The epoch count.

    Returns:
        Metric -> value at that epoch.
    """
    return bench({**cfg.as_dict(), "N": fid[0], "W": fid[1], "Resolution": fid[2]}, nepochs=epochs)[epochs]


class BenchmarkObjective:
    """Evaluations as queries of a Benchmark, charged its predicted runtime, until ``budget`` simulated seconds
    or ``max_evaluations`` are spent; :meth:`trajectory` has one row per evaluation.

    Calling it with (config, (N, W, Resolution), epochs) returns the validation accuracy, or None once the budget
    or evaluations are spent (an evaluation that would go over the budget is not made). Epochs are rounded and
    clipped to 1..max_epochs (None: max_epochs).

    Args:
        bench: A :class:`jahs_gym.Benchmark` that answers valid_acc and runtime.
        budget: Simulated seconds, finite and > 0.
        max_evaluations: Evaluations at most (None: no cap).

    Raises:
        ValueError: A bad ``budget`` or ``max_evaluations``, or a Benchmark without valid_acc or runtime.
    """

    def __init__(self, bench: Any, budget: float, max_evaluations: int | None = None) -> None:
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise ValueError(f"budget={budget!r} is not allowed; allowed: simulated seconds, finite and > 0")
        if max_evaluations is not None and (isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int)
                                            or max_evaluations < 1):
            raise ValueError(f"max_evaluations={max_evaluations!r} is not allowed; allowed: None or an int >= 1")
        metrics = [m.replace("-", "_") for m in bench.metrics]
        missing = [m for m in ("valid_acc", "runtime") if m not in metrics]
        if missing:
            raise ValueError(f"the Benchmark answers {list(bench.metrics)}; allowed: one that answers valid_acc and "
                             f"runtime (missing {missing}): Benchmark(task) or metrics=[..., 'valid_acc', 'runtime']")
        self.bench, self.budget, self.max_evaluations = bench, float(budget), max_evaluations
        self.max_epochs = int(bench.max_epochs)
        self.rows: list[dict[str, Any]] = []
        self.spent = 0.0
        self._paid: dict[tuple[str, Fid], tuple[int, float]] = {}  # (config, fidelity) -> (epochs, runtime) paid
        self._done = False

    def __call__(self, cfg: Config, fid: Fid = FULL, epochs: int | None = None) -> float | None:
        if self._done:
            return None
        e = self.max_epochs if epochs is None else int(min(max(round(epochs), 1), self.max_epochs))
        row = query(self.bench, cfg, fid, e)
        acc, runtime = metric_value(row, "valid_acc"), metric_value(row, "runtime")
        key = (cfg.config_id, tuple(fid))
        paid_epochs, paid = self._paid.get(key, (0, 0.0))
        cost = max(0.0, runtime - paid) if e > paid_epochs else 0.0
        if self.spent + cost > self.budget:
            self._done = True
            return None
        if e > paid_epochs:
            self._paid[key] = (e, runtime)
        self.spent += cost
        best = max([acc, *(r["valid_acc"] for r in self.rows)])
        self.rows.append({"step": len(self.rows) + 1, **cfg.as_dict(), "N": fid[0], "W": fid[1],
                          "Resolution": fid[2], "epoch": e, "valid_acc": acc, "cost": cost,
                          "cumulative_cost": self.spent, "incumbent_valid_acc": best})
        if self.max_evaluations is not None and len(self.rows) >= self.max_evaluations:
            self._done = True
        return acc

    def trajectory(self) -> pd.DataFrame:
        """The evaluations so far.

        Returns:
            One row per evaluation: step, the config's keys, N, W, Resolution, epoch, valid_acc, cost,
            cumulative_cost, incumbent_valid_acc.
        """
        return pd.DataFrame(self.rows)


def on_benchmark(agent: Any, bench: Any, budget: float, seed: int = 0,
                 max_evaluations: int | None = None) -> pd.DataFrame:
    """Run ``agent`` (anything with ``search(objective, rng)``) on ``bench``.

    Args:
        agent: The agent.
        bench: A :class:`jahs_gym.Benchmark` that answers valid_acc and runtime.
        budget: Simulated seconds, finite and > 0.
        seed: Seed of the agent's random generator.
        max_evaluations: Evaluations at most (None: no cap).

    Returns:
        Its trajectory (:meth:`BenchmarkObjective.trajectory`).
    """
    objective = BenchmarkObjective(bench, budget, max_evaluations)
    agent.search(objective, np.random.default_rng(seed))
    return objective.trajectory()
