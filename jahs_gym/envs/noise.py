"""Seed noise as a property of a training run: one standard normal per (episode, run, metric).

A run is a (config, N, W, Resolution) trained with one seed. Its noise is drawn from a hash of the
episode's key and the run, so asking for the same run again, or for more of its epochs (continuation),
returns the same noisy curve: repeating an action cannot improve the incumbent. The hash is splitmix64 on
uint64 arrays; one episode uses arrays of length 1, so the single and the vector env draw the same bits.
"""

from __future__ import annotations

import numpy as np

_G, _C1, _C2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's step on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _G
        x = (x ^ (x >> np.uint64(30))) * _C1
        x = (x ^ (x >> np.uint64(27))) * _C2
        return x ^ (x >> np.uint64(31))


def run_hash(episode_keys: np.ndarray, cols: list) -> np.ndarray:
    """One hash per row of its episode's key and its run.

    Args:
        episode_keys: uint64 keys, one per row (drawn at reset).
        cols: Decoded action columns (:data:`jahs_gym.envs.codec.COMPONENTS`); columns 0..12, the config and
            N, W, Resolution, name the run (the epoch does not).

    Returns:
        A uint64 array, one hash per row.
    """
    h = np.asarray(episode_keys, dtype=np.uint64)
    for c in cols[:13]:
        c = np.asarray(c)
        bits = np.ascontiguousarray(c, dtype=np.float64).view(np.uint64) if c.dtype.kind == "f" else \
            c.astype(np.uint64)
        h = _mix(h ^ bits)
    return h


def normals(h: np.ndarray, n_metrics: int) -> np.ndarray:
    """Standard normals from run hashes (Box-Muller on two hashed uniforms).

    Args:
        h: uint64 run hashes (:func:`run_hash`), one per row.
        n_metrics: Normals per row.

    Returns:
        A (rows, n_metrics) float64 array.
    """
    j = np.arange(1, n_metrics + 1, dtype=np.uint64)
    a = _mix(h[:, None] ^ j)
    b = _mix(a)
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
