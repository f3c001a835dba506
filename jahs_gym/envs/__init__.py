"""JAHS-v0 and its vector twin (:mod:`jahs_gym.envs.jahs`), over one episode core (:mod:`jahs_gym.envs.core`)."""

from __future__ import annotations

from jahs_gym.envs.codec import ACTION_TYPES, ActionCodec
from jahs_gym.envs.jahs import OBSERVATION_TYPES, RENDER_MODES, JAHSEnv, JAHSVectorEnv
from jahs_gym.envs.rewards import REWARDS
from jahs_gym.envs.tasks import OBS_KEYS, OBS_METRICS, epoch_grid

__all__ = ["ACTION_TYPES", "OBSERVATION_TYPES", "OBS_KEYS", "OBS_METRICS", "RENDER_MODES", "REWARDS", "ActionCodec",
           "JAHSEnv", "JAHSVectorEnv", "epoch_grid"]
