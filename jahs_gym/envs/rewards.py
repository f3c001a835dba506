"""JAHS-v0's rewards: a registry of functions written once for one episode (floats) and N episodes (arrays).

Each reward is ``fn(s, xp) -> reward`` where ``s`` is a :class:`StepView` of the evaluations that were
revealed this step and ``xp`` the numeric back end (:mod:`jahs_gym.envs.xp`). A user's callable
``(metrics, state) -> float`` is called once per revealed evaluation and must return a finite number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jahs_gym.envs.tasks import SLOT

WEIGHT_KEYS = ("accuracy", "latency", "size")


@dataclass(slots=True)
class StepView:
    """What a reward may look at (floats for one episode, arrays for N): this evaluation and the episode."""

    valid_acc: Any
    cost: Any
    budget: Any
    incumbent_valid_acc: Any
    previous_incumbent_valid_acc: Any
    cumulative_cost: Any
    step: Any
    max_steps: int
    obs_metrics: Any  # the 8 normalised observation entries of this evaluation (list, or (n, 8) array)
    cost_weight: float
    weights: Mapping[str, float]


def improvement(s: StepView, xp: Any) -> Any:
    """Gain of the incumbent's validation accuracy (in [0, 1] units) minus ``cost_weight * cost / budget``.

    Args:
        s: The step's evaluations and episode state.
        xp: The numeric back end.

    Returns:
        The reward (a float, or an array for N episodes).
    """
    return (s.incumbent_valid_acc - s.previous_incumbent_valid_acc) / 100.0 - s.cost_weight * s.cost / s.budget


def accuracy_per_cost(s: StepView, xp: Any) -> Any:
    """``valid_acc / 100 * (budget / max_steps) / cost`` clipped to [0, 10] (1: full accuracy at the mean share).

    Args:
        s: The step's evaluations and episode state.
        xp: The numeric back end.

    Returns:
        The reward (a float, or an array for N episodes).
    """
    return xp.clip(s.valid_acc / 100.0 * (s.budget / s.max_steps) / xp.maximum(s.cost, 1e-9), 0.0, 10.0)


def multiobjective(s: StepView, xp: Any) -> Any:
    """``w_accuracy * valid_acc / 100 - w_latency * latency_obs - w_size * size_obs`` (the task's own scales).

    Args:
        s: The step's evaluations and episode state.
        xp: The numeric back end.

    Returns:
        The reward (a float, or an array for N episodes).
    """
    w = s.weights
    lat, size = SLOT["latency"], SLOT["size_MB"]
    m = s.obs_metrics
    lat_v, size_v = (m[:, lat], m[:, size]) if xp.vector else (m[lat], m[size])
    return w["accuracy"] * s.valid_acc / 100.0 - w["latency"] * lat_v - w["size"] * size_v


REWARDS: dict[str, Callable[[StepView, Any], Any]] = {
    "improvement": improvement, "accuracy_per_cost": accuracy_per_cost, "multiobjective": multiobjective}


def check_reward(reward: Any, weights: Mapping[str, float] | None, cost_weight: Any) -> tuple[dict, float]:
    """Validated (reward_weights, cost_weight); one ValueError naming the bad value.

    Args:
        reward: A name from :data:`REWARDS` or a callable ``(metrics, state) -> float``.
        weights: ``reward_weights`` (keys from :data:`WEIGHT_KEYS`; only with "multiobjective"), or None.
        cost_weight: A finite number.

    Returns:
        The weights (accuracy 1, latency 0, size 0 unless given) and the cost weight, as floats.

    Raises:
        ValueError: An unknown reward, weights that are not a dict, have unknown keys or are given with another
            reward, or a weight or cost_weight that is not a finite number.
    """
    if not callable(reward) and (not isinstance(reward, str) or reward not in REWARDS):
        raise ValueError(f"reward={reward!r} is not allowed; allowed: {list(REWARDS)} or a callable "
                         "(metrics, state) -> float")
    if weights is not None and not isinstance(weights, Mapping):
        raise ValueError(f"reward_weights={weights!r} must be a dict with keys from {list(WEIGHT_KEYS)}")
    w = {"accuracy": 1.0, "latency": 0.0, "size": 0.0, **(weights or {})}
    unknown = set(w) - set(WEIGHT_KEYS)
    if unknown:
        raise ValueError(f"reward_weights has unknown key(s) {sorted(unknown)}; allowed: {list(WEIGHT_KEYS)}")
    if weights and reward != "multiobjective":
        raise ValueError(f"reward_weights={dict(weights)!r} only apply to reward='multiobjective', not {reward!r}")
    for k, v in [*w.items(), ("cost_weight", cost_weight)]:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            name = "cost_weight" if k == "cost_weight" else f"reward_weights[{k!r}]"
            raise ValueError(f"{name}={v!r} must be a finite number")
    return {k: float(v) for k, v in w.items()}, float(cost_weight)


def call_user_reward(fn: Callable, metrics: dict[str, float], state: dict[str, Any]) -> float:
    """A user's reward for one evaluation, refused unless it is a finite real number.

    Args:
        fn: The user's callable.
        metrics: The evaluation's metrics.
        state: The episode state passed to ``fn``.

    Returns:
        ``fn(metrics, state)`` as a float.

    Raises:
        ValueError: ``fn`` returned a bool, a non-number, NaN or an infinity.
    """
    value = fn(metrics, state)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(value)):
        raise ValueError(f"the reward callable returned {value!r}; it must return a finite float")
    return float(value)
