"""What every agent shares: the episode protocol, a recorder, and helpers to ask for a config at a fidelity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from jahs_gym.envs import JAHSEnv
from jahs_gym.space import ACTIVATIONS, N_VALUES, OP_KEYS, RESOLUTIONS, W_VALUES, Config, sample_config

FULL = (5, 16, 1.0)  # full fidelity (N, W, Resolution)


@dataclass(frozen=True)
class Protocol:
    """One small protocol for every agent's episodes: same task, budget, step cap, noise and continuation."""

    task: str = "fashion_mnist"
    budget: float | None = None  # simulated seconds; None: the bundle's default
    max_steps: int = 1000
    noise: bool = False
    continuation: bool = True  # promotions pay only the extra epochs (fair to multi-fidelity agents)
    backend: str = "surrogate"  # or a table's arms: "table" (measured), "surrogate_arms" (predicted)

    def make_env(self, action_type: str = "dict", **kw: Any) -> JAHSEnv:
        """A JAHS-v0 env with this protocol's settings.

        Args:
            action_type: The env's action type (``"dict"``, ``"discrete"``, ``"multidiscrete"``, ...).
            **kw: More :class:`jahs_gym.envs.JAHSEnv` keywords (e.g. ``arm_seed``).

        Returns:
            The env (not reset).
        """
        return JAHSEnv(task=self.task, budget=self.budget, max_steps=self.max_steps, noise=self.noise,
                       continuation=self.continuation, action_type=action_type, backend=self.backend, **kw)


class Recorder(gym.Wrapper):
    """Keeps one row per revealed evaluation and knows when the episode is over.

    Args:
        env: The JAHS-v0 env to record.
    """

    def __init__(self, env: JAHSEnv) -> None:
        super().__init__(env)
        self.rows: list[dict[str, Any]] = []
        self.done = False
        self.reference: float | None = None  # the regret reference, from the env's info
        self.obs: Any = None
        self._t0 = time.perf_counter()

    def reset(self, **kw: Any) -> tuple[Any, dict]:
        """Reset the env and start a new record.

        Args:
            **kw: ``env.reset`` keywords (``seed``, ``options``).

        Returns:
            (observation, info) of the env.
        """
        self.rows, self.done, self._t0 = [], False, time.perf_counter()
        self.obs, info = self.env.reset(**kw)
        return self.obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Step the env; record the evaluation unless it went over budget.

        Args:
            action: An action of the env's action space.

        Returns:
            The env's (observation, reward, terminated, truncated, info).

        Raises:
            RuntimeError: The episode is over (reset first).
        """
        if self.done:
            raise RuntimeError("the episode is over; reset first")
        obs, r, term, trunc, info = self.env.step(action)
        self.obs = obs
        self.done = term or trunc
        self.reference = info["regret_reference"]
        if not info["over_budget"]:
            self.rows.append({"step": len(self.rows) + 1, "cost": info["cost"],
                              "cumulative_cost": info["cumulative_cost"], "valid_acc": info["valid_acc"],
                              "test_acc": info["test_acc"], "incumbent_valid_acc": info["incumbent_valid_acc"],
                              "incumbent_test_acc": info["incumbent_test_acc"], "regret": info["regret"],
                              "N": info["fidelity"]["N"], "W": info["fidelity"]["W"],
                              "Resolution": info["fidelity"]["Resolution"], "epoch": info["fidelity"]["epoch"],
                              "wall_s": time.perf_counter() - self._t0})
        return obs, r, term, trunc, info


    def episode_rows(self) -> list[dict[str, Any]]:
        """The episode's rows; an episode that revealed no evaluation within the budget (its first one already cost
        more) gets one row that says so: step 0 at cost 0, incumbent accuracies 0 and regret = the reference, so
        its final regret counts as the worst possible instead of going missing from the statistics.

        Returns:
            The recorded rows, or that one row.
        """
        if self.rows:
            return self.rows
        nan = float("nan")
        reference = self.reference if self.reference is not None else self.env.unwrapped.core.reference
        return [{"step": 0, "cost": 0.0, "cumulative_cost": 0.0, "valid_acc": nan, "test_acc": nan,
                 "incumbent_valid_acc": 0.0, "incumbent_test_acc": 0.0, "regret": float(reference), "N": nan,
                 "W": nan, "Resolution": nan, "epoch": nan, "wall_s": time.perf_counter() - self._t0}]


def dict_action(cfg: Config | dict, n: int, w: int, r: float, epoch_index: int) -> dict[str, Any]:
    """The ``dict`` action asking for ``cfg`` at (N, W, Resolution) and the epoch grid's ``epoch_index``.

    Args:
        cfg: The config (a Config or its dict).
        n: N, one of ``N_VALUES``.
        w: W, one of ``W_VALUES``.
        r: Resolution, one of ``RESOLUTIONS``.
        epoch_index: Index into the env's epoch grid.

    Returns:
        The action, as the ``dict`` action space takes it.
    """
    c = cfg.as_dict() if isinstance(cfg, Config) else cfg
    return {**{k: int(c[k]) for k in OP_KEYS}, "Activation": ACTIVATIONS.index(c["Activation"]),
            "TrivialAugment": int(bool(c["TrivialAugment"])),
            "LearningRate": np.array([c["LearningRate"]], np.float32),
            "WeightDecay": np.array([c["WeightDecay"]], np.float32),
            "N": N_VALUES.index(n), "W": W_VALUES.index(w), "Resolution": RESOLUTIONS.index(r),
            "epoch": int(epoch_index)}


def evaluate(env: Recorder, cfg: Config, fid: tuple[int, int, float], epoch_index: int) -> float | None:
    """Valid accuracy of cfg at the fidelity, or None when the episode ended (budget or steps).

    Args:
        env: The recorded episode (``dict`` actions).
        cfg: The config.
        fid: (N, W, Resolution).
        epoch_index: Index into the env's epoch grid.

    Returns:
        The validation accuracy in percent, or None.
    """
    if env.done:
        return None
    _, _, _, _, info = env.step(dict_action(cfg, *fid, epoch_index))
    return None if info["over_budget"] else info["valid_acc"]


def random_config(rng: np.random.Generator) -> Config:
    """A uniform config of the search space.

    Args:
        rng: The random generator.

    Returns:
        The config.
    """
    return sample_config(rng)


def max_epoch_index(env: Recorder) -> int:
    """The last index of the env's epoch grid.

    Args:
        env: The recorded episode.

    Returns:
        That index.
    """
    return env.unwrapped.codec.n_epochs - 1
