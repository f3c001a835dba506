"""JAHS-v0's arguments: each checked once (one ValueError naming the bad one), then the episode core built.

Shared by :class:`jahs_gym.envs.JAHSEnv` and :class:`jahs_gym.envs.JAHSVectorEnv`, with the observation space,
the reset options rule and how an episode draws its task and noise key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from jahs_gym.envs.codec import ActionCodec
from jahs_gym.envs.core import Episodes
from jahs_gym.envs.rewards import check_reward
from jahs_gym.envs.tasks import OBS_KEYS, EnvTask, resolve_tasks

OBSERVATION_TYPES = ("box", "dict")
RENDER_MODES = ["ansi", "rgb_array"]


def _obs_space(observation_type: str) -> spaces.Space:
    if observation_type not in OBSERVATION_TYPES:
        raise ValueError(f"observation_type={observation_type!r} is not allowed; allowed: {list(OBSERVATION_TYPES)}")
    if observation_type == "box":
        return spaces.Box(0.0, 1.0, (len(OBS_KEYS),), np.float32)
    return spaces.Dict({k: spaces.Box(0.0, 1.0, (1,), np.float32) for k in OBS_KEYS})


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}={v!r} must be a positive integer")
    return int(v)


def _build(task: str, budget: Any, max_steps: Any, action_type: str, observation_type: str, reward: Any,
           cost_weight: Any, reward_weights: Any, continuation: Any, noise: Any, n_lr: int, n_wd: int, n_epochs: int,
           n_arms: int, arm_seed: int, render_mode: Any, backend: Any, save_dir: Any, live_seed: Any, n: int,
           vector: bool) -> tuple[Episodes, ActionCodec]:
    """Validate the arguments (one ValueError naming the bad one) and make the episode core."""
    max_steps = _positive_int("max_steps", max_steps)
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r} is not allowed; allowed: {RENDER_MODES} or None")
    for name, v in (("continuation", continuation), ("noise", noise)):
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name}={v!r} must be True or False")
    weights, cost_weight = check_reward(reward, reward_weights, cost_weight)
    _obs_space(observation_type)
    n_epochs = _positive_int("n_epochs", n_epochs)
    names = resolve_tasks(task)
    if backend != "surrogate" and len(names) > 1:
        raise ValueError(f"backend={backend!r} works on one task; task='random' needs backend='surrogate'")
    live = None
    if backend == "live":
        if noise:
            raise ValueError("noise=True with backend='live': a live run's noise is real (one trained seed, "
                             "live_seed); use noise=False")
        live = {"save_dir": save_dir, "seed": live_seed}
    elif save_dir is not None or live_seed != 0:
        raise ValueError(f"save_dir={save_dir!r} and live_seed={live_seed!r} are for backend='live' only "
                         f"(backend={backend!r})")
    tasks: list[EnvTask] = []
    for name in names:
        tasks.append(EnvTask(name, n_epochs, budget, tasks[0].metrics if tasks else None, backend=backend,
                             live=live))
    runs = tasks[0].arms.columns if tasks[0].arms is not None else None
    codec = ActionCodec(action_type, n_lr, n_wd, n_epochs, n_arms, arm_seed, runs)
    lacking = [t.name for t in tasks if noise and t.noise_std is None]
    if lacking:
        raise ValueError(f"noise=True, but the bundle(s) {lacking} have no seed-noise model in the surrogate's "
                         "fitted space (no repeated seeds, or fitted by an older jahs-gym); use noise=False or refit: "
                         "`python -m generation fit TABLE -o FOLDER`")
    core = Episodes(n, vector, tasks, codec, max_steps, reward, weights, cost_weight, bool(continuation),
                    bool(noise), record=render_mode is not None)
    return core, codec


def _draw_episode(rng: np.random.Generator, n_tasks: int) -> tuple[int, int]:
    """(task index, noise key) of a new episode, drawn in this order from the episode's generator."""
    t = int(rng.integers(n_tasks)) if n_tasks > 1 else 0
    return t, int(rng.integers(0, 2**63 - 1))


def _check_options(options: Any) -> None:
    if options:
        raise ValueError(f"reset(options={options!r}): JAHS-v0 takes no reset options; pass None")
