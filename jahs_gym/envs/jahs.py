"""JAHS-v0: one budget-limited joint architecture + hyperparameter search run as a Gymnasium episode.

:class:`JAHSEnv` is the environment, :class:`JAHSVectorEnv` its native vector twin. Both are thin
adapters over one episode core (:mod:`jahs_gym.envs.core`), so they give the same numbers for the same
seeds and actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from jahs_gym.envs import render as rd
from jahs_gym.envs.build import (  # noqa: F401  (OBSERVATION_TYPES, RENDER_MODES: re-exported)
    OBSERVATION_TYPES,
    RENDER_MODES,
    _build,
    _check_options,
    _draw_episode,
    _obs_space,
    _positive_int,
)
from jahs_gym.envs.codec import BOX_DIMS, C_EPOCH
from jahs_gym.envs.info import add_reset_info, config_of, fidelity_of
from jahs_gym.envs.tasks import OBS_KEYS


class JAHSEnv(gym.Env):
    """
    ## Description

    One episode is one budget-limited optimisation run of joint architecture and hyperparameter
    search in the JAHS-Bench-201 space. Each step trains (simulated, by surrogates fitted on learning
    curves our MPI pipeline really trained) one configuration at one fidelity and reveals its
    predicted metrics; simulated training time is charged to a budget.

    ## Action Space

    ``action_type="multidiscrete"`` (default; PPO, A2C): ``MultiDiscrete([5]*6 + [3, 2, n_lr, n_wd, 3, 3, 3,
    n_epochs])``: Op1..Op6 (skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3), Activation
    (ReLU, Hardswish, Mish), TrivialAugment, LearningRate on a log grid of ``n_lr`` values in [1e-3, 1],
    WeightDecay on a log grid of ``n_wd`` values in [1e-5, 1e-2], N (1, 3, 5), W (4, 8, 16), Resolution
    (0.25, 0.5, 1.0) and an index into ``epoch_grid`` (every epoch when ``n_epochs`` >= the task's max
    epochs, else log-spaced).

    ``"discrete"`` (DQN, bandits): ``Discrete(n_arms)``, a fixed pool of (config, fidelity, epochs) arms
    drawn with ``arm_seed``. ``"box"`` (SAC, TD3): ``Box(-1, 1, (14,), float32)`` in the order above,
    each entry decoded to the nearest valid value (LearningRate and WeightDecay continuously, log scale).
    ``"dict"``: the same entries by name (Discrete indices; LearningRate and WeightDecay as Box(1,); a
    value within 4 float32 ulps of a bound is clamped to it, as everywhere in the space).
    An invalid action (outside the space, NaN, wrong shape or dtype) raises one ``ValueError``.

    ``backend="table"`` turns JAHS-v0 into the tabular benchmark NAS-Bench-201 users know: the arms are the
    task's trained runs (a config at the one fidelity it was trained at), ``MultiDiscrete([runs, n_epochs])``
    (a run and an epoch index) or ``Discrete(runs * n_epochs)`` (``run * n_epochs + epoch index``); a step
    returns the run's measured learning curve at that epoch and charges its measured cost (at the training
    machine's median speed, as the surrogate learns it). Without noise a run trained with several seeds gives
    their mean (in the fitted space); with ``noise=True`` one of its real seeds, drawn per run and episode.
    ``backend="surrogate_arms"``: the same arms, every number predicted by the surrogate (the surrogate
    restricted to the table's choices: ``benchmarks/surrogate_validity.py`` compares the two).

    ``backend="live"`` trains every evaluation for real (``jahs_gym.live``: ``python -m generation.live`` in a
    subprocess, under the bundle's protocol, seed ``live_seed``) into the folder ``save_dir``, which serves
    repeated and shorter requests and continues a run from its checkpoint for more epochs. The action space is
    the surrogate's; metrics and cost are those measured on this machine (the budget stays in the bundle's
    seconds), the regret reference stays the surrogate's optimum (a real run may beat it: regret < 0), and
    ``noise=True`` is refused (a real run's noise is real). Slow: minutes a step at the full protocol. Needs the
    ``generation`` extra and the task's dataset.

    ## Observation Space

    ``Box(0, 1, (12,), float32)``, or by name with ``observation_type="dict"``. A metric entry is
    ``(f(v) - f(lo)) / (f(hi) - f(lo))`` clipped to [0, 1], with ``f`` the transform the surrogate was fitted
    in (log for cpu_runtime, latency, size_MB, FLOPS; log1p for losses; logit for accuracies) and ``lo``,
    ``hi`` the range of the task's training table. Test accuracy never enters the observation.

    | Num | Name                | Meaning                                               |
    |-----|---------------------|-------------------------------------------------------|
    | 0   | valid_acc           | this evaluation's validation accuracy                 |
    | 1   | train_acc           | its training accuracy                                 |
    | 2   | valid_loss          | its validation loss                                   |
    | 3   | train_loss          | its training loss                                     |
    | 4   | cpu_runtime         | simulated seconds to train and evaluate it (the cost) |
    | 5   | latency             | forward seconds per image                             |
    | 6   | size_MB             | parameters (millions)                                 |
    | 7   | FLOPS               | MFLOPs per image                                      |
    | 8   | incumbent_valid_acc | best validation accuracy so far / 100                 |
    | 9   | budget_used         | fraction of the budget spent                          |
    | 10  | steps_used          | fraction of ``max_steps`` taken                       |
    | 11  | step_cost           | this step's cost / budget                             |

    The timings (cpu_runtime, latency) are what the training machine measured at its median speed (see
    the task's DATA_CARD.md): they rank configurations, their scale is that machine's.

    ## Rewards

    ``"improvement"`` (default): gain of the incumbent's validation accuracy (in [0, 1] units) minus
    ``cost_weight * cost / budget``. ``"accuracy_per_cost"``: ``valid_acc / 100 * (budget / max_steps) /
    cost``, clipped to [0, 10] (1 = full accuracy at the average per-step share of the budget).
    ``"multiobjective"``: ``w_accuracy * valid_acc / 100 - w_latency * latency_obs - w_size * size_obs``
    with ``reward_weights`` (the latency and size observation entries, on the episode's own task's scale).
    Or any callable ``(metrics, state) -> float`` where ``metrics`` are this evaluation's predicted metrics
    (test accuracy included) and ``state`` holds budget, cost, cumulative_cost, incumbent_valid_acc,
    previous_incumbent_valid_acc, step and max_steps; it must return a finite number.

    ## Starting State

    Nothing evaluated: metric entries 0, budget and steps unused.

    ## Episode End

    Terminated when an evaluation does not fit into the remaining budget (it is not revealed; reward
    0; ``info["over_budget"]`` is True) or the budget is used up exactly. Truncated after ``max_steps``
    steps (unless terminated on that step). With ``continuation=True`` a config already trained at the
    same (N, W, Resolution) is charged only for the extra epochs (freeze-thaw); asking for fewer epochs
    than already trained is free.

    ## Noise

    ``noise=True`` draws each training run's seed noise from the bundle's noise model (the spread of runs
    trained with two seeds, in the surrogate's fitted space): a run is a (config, N, W, Resolution), its
    noise is fixed for the episode (a hash of the run and a key drawn from ``self.np_random`` at reset),
    so the same action returns the same noisy curve again and continuation extends that curve.

    ## Info

    ``task``, ``budget``, ``cost``, ``cumulative_cost``, ``over_budget``, ``regret_reference`` (the highest
    test accuracy the surrogate predicts anywhere, found when the bundle was fitted), ``config`` and
    ``fidelity`` of the evaluation, ``incumbent_valid_acc`` and ``incumbent_test_acc`` (as observed, noise
    included); once there is an incumbent, ``incumbent`` (its config and fidelity) and ``regret`` (the
    reference minus the incumbent's noise-free test accuracy: >= 0); for an evaluation within the budget
    also ``valid_acc``, ``test_acc`` and ``metrics`` (every predicted metric). Predictions are bounded by
    what a metric can be (accuracies are fitted in logit space, times in log space), never clipped to the
    table's range.

    Args:
        task: "fashion_mnist", an installed task, a bundle folder, or "random" (one installed task per episode).
        budget: Simulated seconds; None: the bundle manifest's default, about 100 mid-fidelity evaluations.
        max_steps: Steps before truncation.
        action_type: "multidiscrete", "discrete", "box" or "dict" (Action Space above).
        observation_type: "box" or "dict" (Observation Space above).
        reward: A reward's name (Rewards above) or a callable ``(metrics, state) -> float``.
        cost_weight: The cost's weight in "improvement".
        reward_weights: "multiobjective"'s weights (accuracy, latency, size); None: 1, 0, 0.
        continuation: Charge a config already trained at the same fidelity only for its extra epochs.
        noise: Draw each run's seed noise (Noise above).
        n_lr: LearningRate grid size.
        n_wd: WeightDecay grid size.
        n_epochs: Epoch grid size.
        n_arms: The "discrete" action type's arm count.
        arm_seed: Seed of the arms.
        render_mode: None, "ansi" (a line of text) or "rgb_array" (a 96 x 160 frame of the incumbent's anytime
            curve and the last evaluation).
        backend: "surrogate" (the whole space); "table", "surrogate_arms" (the table's trained runs, measured or
            predicted); "live" (real training). All but "surrogate" take one task, not "random".
        save_dir: backend="live" only: the live folder.
        live_seed: backend="live" only: the runs' training seed.

    Copies (``copy.deepcopy``), pickles (also into a fresh process) and envs in other threads give the
    same numbers as a fresh env with the same seed; the surrogate's forest is shared read-only.

    >>> import gymnasium as gym, jahs_gym
    >>> env = gym.make("JAHS-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, info["task"]
    ((12,), 'fashion_mnist')
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> type(reward), 0 <= info["valid_acc"] <= 100, "test_acc" in info
    (<class 'float'>, True, True)

    ## Version History

    * v0: first release (surrogates fitted on jahs-gym's own training runs).
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(self, task: str = "fashion_mnist", budget: float | None = None, max_steps: int = 100,
                 action_type: str = "multidiscrete", observation_type: str = "box",
                 reward: str | Callable[[dict, dict], float] = "improvement", cost_weight: float = 0.1,
                 reward_weights: Mapping[str, float] | None = None, continuation: bool = False, noise: bool = False,
                 n_lr: int = 8, n_wd: int = 8, n_epochs: int = 10, n_arms: int = 256, arm_seed: int = 0,
                 render_mode: str | None = None, backend: str = "surrogate", save_dir: str | None = None,
                 live_seed: int = 0) -> None:
        self.core, self.codec = _build(task, budget, max_steps, action_type, observation_type, reward, cost_weight,
                                       reward_weights, continuation, noise, n_lr, n_wd, n_epochs, n_arms, arm_seed,
                                       render_mode, backend, save_dir, live_seed, 1, vector=False)
        self.action_space = self.codec.space
        self.observation_type = observation_type
        self.observation_space = _obs_space(observation_type)
        self.render_mode = render_mode
        self.max_steps = self.core.max_steps
        self.core.reset(0, 0, 0)
        self._over = False

    @property
    def task(self) -> Any:
        """The current episode's task (predictor, budget, epoch grid, regret reference)."""
        return self.core.task()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Start an episode (task and noise key drawn from ``self.np_random``).

        Args:
            seed: Seeds ``self.np_random``; None keeps its stream.
            options: Must be None or empty (ValueError otherwise).

        Returns:
            The observation and the info dict.
        """
        super().reset(seed=seed)
        _check_options(options)
        self.core.reset(0, *_draw_episode(self.np_random, len(self.core.tasks)))
        self._over = False
        return self._observation(), self.core.reset_info(0)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Evaluate the action's config at its fidelity and charge its cost (Episode End, Info above).

        Args:
            action: An element of ``action_space`` (ValueError otherwise).

        Returns:
            Observation, reward, terminated, truncated, info.
        """
        _, reward, terminated, truncated, info = self.core.step(self.codec.decode(action))
        self._over = info["over_budget"]
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def _observation(self) -> Any:
        if self.observation_type == "box":
            return np.array(self.core.obs, dtype=_F32)
        return {k: np.array([v], dtype=_F32) for k, v in zip(OBS_KEYS, self.core.obs)}

    def render(self) -> str | np.ndarray | None:
        """The episode so far as ``render_mode`` asks.

        Returns:
            A line of text ("ansi"), an RGB frame ("rgb_array") or None (no render mode).
        """
        return rd.render(self.render_mode, self.core, 0, self._over)

    def decode(self, action: Any) -> dict[str, Any]:
        """The config and fidelity that ``action`` asks for, as a JAHS-Bench-201 dict (for people).

        Args:
            action: An element of ``action_space``.

        Returns:
            The config keys plus N, W, Resolution and epoch.
        """
        c = self.codec.decode(action)
        return {**config_of(c, False), **fidelity_of(c, self.task.epoch_grid_list[c[C_EPOCH]])}


class JAHSVectorEnv(VectorEnv):
    """``num_envs`` JAHS-v0 episodes stepped together with one batched surrogate call per task a step.

    Same arguments as :class:`JAHSEnv` plus ``num_envs``; the same episode core, so sub-environment
    ``i`` after ``reset(seed=s)`` gives what ``JAHSEnv`` gives after ``reset(seed=s + i)`` for the same
    actions (``reset(seed=[s0, s1, ...])`` seeds each one). Autoreset is Gymnasium's next-step mode:
    the step after an episode ends resets that sub-environment (its action is ignored; reward 0).
    ``info`` has the single env's keys as arrays, each with a ``_key`` mask of the sub-environments that have it
    (nested dicts for config, fidelity, metrics, incumbent); a sub-env reset on a step has its reset's info there.

    Args:
        num_envs: The number of sub-environments (>= 1).
        task: As :class:`JAHSEnv` takes it.
        budget: As :class:`JAHSEnv` takes it.
        max_steps: As :class:`JAHSEnv` takes it.
        action_type: As :class:`JAHSEnv` takes it.
        observation_type: As :class:`JAHSEnv` takes it.
        reward: As :class:`JAHSEnv` takes it.
        cost_weight: As :class:`JAHSEnv` takes it.
        reward_weights: As :class:`JAHSEnv` takes it.
        continuation: As :class:`JAHSEnv` takes it.
        noise: As :class:`JAHSEnv` takes it.
        n_lr: As :class:`JAHSEnv` takes it.
        n_wd: As :class:`JAHSEnv` takes it.
        n_epochs: As :class:`JAHSEnv` takes it.
        n_arms: As :class:`JAHSEnv` takes it.
        arm_seed: As :class:`JAHSEnv` takes it.
        render_mode: As :class:`JAHSEnv` takes it.
        backend: As :class:`JAHSEnv` takes it.
        save_dir: As :class:`JAHSEnv` takes it.
        live_seed: As :class:`JAHSEnv` takes it.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": RENDER_MODES}

    def __init__(self, num_envs: int = 1, task: str = "fashion_mnist", budget: float | None = None,
                 max_steps: int = 100, action_type: str = "multidiscrete", observation_type: str = "box",
                 reward: str | Callable[[dict, dict], float] = "improvement", cost_weight: float = 0.1,
                 reward_weights: Mapping[str, float] | None = None, continuation: bool = False, noise: bool = False,
                 n_lr: int = 8, n_wd: int = 8, n_epochs: int = 10, n_arms: int = 256, arm_seed: int = 0,
                 render_mode: str | None = None, backend: str = "surrogate", save_dir: str | None = None,
                 live_seed: int = 0) -> None:
        self.num_envs = _positive_int("num_envs", num_envs)
        self.core, self.codec = _build(task, budget, max_steps, action_type, observation_type, reward, cost_weight,
                                       reward_weights, continuation, noise, n_lr, n_wd, n_epochs, n_arms, arm_seed,
                                       render_mode, backend, save_dir, live_seed, self.num_envs, vector=True)
        self.single_action_space = self.codec.space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_type = observation_type
        self.single_observation_space = _obs_space(observation_type)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.render_mode = render_mode
        self.max_steps = self.core.max_steps
        self._rngs: list[np.random.Generator] | None = None
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._over = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset every sub-environment.

        Args:
            seed: None, an int (sub-env i gets ``seed + i``) or a list of ``num_envs`` ints or None.
            options: Must be None or empty.

        Returns:
            The batched observation and info.

        Raises:
            ValueError: Any other seed.
        """
        _check_options(options)
        n = self.num_envs
        if seed is None:
            seeds: list = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        elif isinstance(seed, (list, tuple)) and len(seed) == n:
            seeds = list(seed)
        else:
            raise ValueError(f"seed={seed!r} must be None, an int (sub-env i gets seed + i) or a list of "
                             f"{n} ints or None")
        if seed is not None or self._rngs is None:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
            self._np_random, self._np_random_seed = self._rngs[0], seeds[0] if seeds[0] is not None else -1
        for i in range(n):
            self.core.reset(i, *_draw_episode(self._rngs[i], len(self.core.tasks)))
        self._done[:] = False
        self._over[:] = False
        info = self.core.reset_info(np.arange(n))
        return self._observation(), {**info, **{f"_{k}": np.ones(n, dtype=bool) for k in info}}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every sub-environment (one that ended last step is reset instead; its action is ignored).

        Args:
            actions: A batch of ``num_envs`` actions, an element of ``action_space``.

        Returns:
            Batched observation, rewards, terminated, truncated and info.

        Raises:
            ResetNeeded: ``reset`` was never called.
        """
        if self._rngs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        cols = self.codec.decode_batch(actions, self.num_envs)
        resetting = self._done
        for i in np.flatnonzero(resetting):
            self.core.reset(int(i), *_draw_episode(self._rngs[i], len(self.core.tasks)))
        _, reward, terminated, truncated, info = self.core.step(cols, ~resetting)
        if resetting.any():  # as Gymnasium's vector envs: a sub-env reset on this step reports its reset info
            idx = np.flatnonzero(resetting)
            add_reset_info(info, self.core.reset_info(idx), idx, self.num_envs)
        self._done = terminated | truncated
        self._over = info["over_budget"] & info["_over_budget"]
        return self._observation(), np.asarray(reward, dtype=np.float64), terminated, truncated, info

    def _observation(self) -> Any:
        obs = self.core.obs
        if self.observation_type == "box":
            return obs.copy()
        return {k: obs[:, i:i + 1].copy() for i, k in enumerate(OBS_KEYS)}

    def render(self) -> tuple | None:
        """Each sub-environment's :meth:`JAHSEnv.render`.

        Returns:
            One rendering per sub-environment, or None (no render mode).
        """
        if self.render_mode is None:
            return None
        return tuple(rd.render(self.render_mode, self.core, i, bool(self._over[i])) for i in range(self.num_envs))


_F32 = np.dtype(np.float32)


__all__ = ["BOX_DIMS", "JAHSEnv", "JAHSVectorEnv"]
