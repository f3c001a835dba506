"""Random search at full fidelity (N=5, W=16, Resolution=1, all epochs): the baseline."""

from __future__ import annotations

import numpy as np

from agents.common import FULL, Recorder, evaluate, max_epoch_index, random_config


class RandomSearch:
    """Uniform random configs at full fidelity and the last epoch until the episode ends."""

    name = "random"
    action_type = "dict"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Evaluate random configs until the episode ends.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        top = max_epoch_index(env)
        while evaluate(env, random_config(rng), FULL, top) is not None:
            pass
