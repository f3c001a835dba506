"""Successive halving and Hyperband over a joint fidelity ladder of (N, W, Resolution, epochs).

Rung k of the ladder uses a bigger network, more pixels and more epochs than rung k-1; the last rung is
full fidelity. Successive halving starts ``n`` random configs on the lowest rung and promotes the best
1/eta to the next; Hyperband loops over brackets that start on different rungs (Li et al., 2018).
With the protocol's ``continuation=True``, a promotion at the same (N, W, Resolution) pays only the
extra epochs.
"""

from __future__ import annotations

import math

import numpy as np

from agents.common import Recorder, evaluate, max_epoch_index, random_config

# (N, W, Resolution, share of the epoch grid): cheap to full
LADDER = ((1, 4, 0.25, 0.3), (3, 8, 0.5, 0.3), (5, 16, 1.0, 0.3), (5, 16, 1.0, 1.0))


def _rung(env: Recorder, k: int) -> tuple[tuple[int, int, float], int]:
    n, w, r, share = LADDER[k]
    return (n, w, r), max(0, round(share * max_epoch_index(env)))


def successive_halving(env: Recorder, rng: np.random.Generator, n: int, start: int, eta: int) -> bool:
    """One bracket: ``n`` random configs from rung ``start`` of ``LADDER``, the best 1/eta promoted at each rung.

    Args:
        env: The recorded episode (``dict`` actions).
        rng: The random generator.
        n: Configs on the first rung.
        start: The first rung.
        eta: Keep the best 1/eta at each rung (at least one).

    Returns:
        False when the episode ended inside the bracket, else True.
    """
    configs = [random_config(rng) for _ in range(n)]
    for k in range(start, len(LADDER)):
        fid, ei = _rung(env, k)
        scores = []
        for c in configs:
            acc = evaluate(env, c, fid, ei)
            if acc is None:
                return False
            scores.append(acc)
        keep = max(1, len(configs) // eta)
        configs = [configs[i] for i in np.argsort(scores)[::-1][:keep]]
    return True


class SuccessiveHalving:
    """Successive halving over ``LADDER``: brackets of eta^3 configs from the lowest rung, until the episode ends.

    Args:
        eta: Keep the best 1/eta at each rung.
    """

    name = "successive_halving"
    action_type = "dict"

    def __init__(self, eta: int = 3) -> None:
        self.eta = eta  # keep the best 1/eta at each rung

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Run brackets until the episode ends.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        n = self.eta ** (len(LADDER) - 1)
        while successive_halving(env, rng, n, 0, self.eta):
            pass


class Hyperband(SuccessiveHalving):
    """Hyperband: loops of brackets that start on ever higher rungs, the most exploratory first."""

    name = "hyperband"

    def run(self, env: Recorder, rng: np.random.Generator) -> None:
        """Run Hyperband loops until the episode ends.

        Args:
            env: The recorded episode (``dict`` actions).
            rng: The agent's random generator.
        """
        s_max = len(LADDER) - 1
        while True:
            for s in range(s_max, -1, -1):  # the most exploratory bracket first
                n = math.ceil((s_max + 1) / (s + 1) * self.eta ** s)
                if not successive_halving(env, rng, n, s_max - s, self.eta):
                    return
