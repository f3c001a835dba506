"""The two numeric back ends of the episode core: Python scalars (one episode) and numpy arrays (N episodes).

Every episode rule in :mod:`jahs_gym.envs.core` and :mod:`jahs_gym.envs.rewards` is written once against
these few primitives. :class:`Scalar` keeps the single environment's step in plain Python floats (numpy
calls on one-element arrays cost about a microsecond each, more than a whole CartPole step);
:class:`Array` runs the same rules on arrays for the vector environment. The equivalence tests
(tests/test_env_equivalence.py) run both on the same seeds and actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Scalar:
    """Rules on Python scalars (``JAHSEnv``)."""

    vector = False

    @staticmethod
    def where(cond: bool, a: Any, b: Any) -> Any:
        """``np.where`` on scalars.

        Args:
            cond: The condition.
            a: The value where it holds.
            b: The value where it does not.

        Returns:
            ``a if cond else b``.
        """
        return a if cond else b

    @staticmethod
    def minimum(a: float, b: float) -> float:
        """``np.minimum`` on scalars.

        Args:
            a: A number.
            b: A number.

        Returns:
            The smaller one.
        """
        return a if a < b else b

    @staticmethod
    def maximum(a: float, b: float) -> float:
        """``np.maximum`` on scalars.

        Args:
            a: A number.
            b: A number.

        Returns:
            The larger one.
        """
        return a if a > b else b

    @staticmethod
    def clip(v: float, lo: float, hi: float) -> float:
        """``np.clip`` on scalars.

        Args:
            v: The value.
            lo: The lower bound.
            hi: The upper bound.

        Returns:
            ``v`` clipped to [lo, hi].
        """
        return lo if v < lo else hi if v > hi else v

    @staticmethod
    def where_each(cond: bool, new: tuple, old: tuple) -> tuple:
        """``where`` of several quantities under one condition.

        Args:
            cond: The condition.
            new: The values where it holds.
            old: The values where it does not (as many).

        Returns:
            ``new if cond else old``.
        """
        return new if cond else old


class Array:
    """The same rules on numpy arrays, one entry per sub-environment (``JAHSVectorEnv``)."""

    vector = True
    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)

    @staticmethod
    def where_each(cond: np.ndarray, new: tuple, old: tuple) -> tuple:
        """``np.where`` of several quantities under one condition.

        Args:
            cond: One bool per sub-environment.
            new: The arrays where it holds.
            old: The arrays where it does not (as many).

        Returns:
            One array per quantity.
        """
        return tuple(np.where(cond, a, b) for a, b in zip(new, old))


def _scalar_join(a: list, b: list) -> list:
    return a + b


def _array_join(a: np.ndarray, b: list) -> np.ndarray:
    return np.column_stack([a, *b])


def _scalar_put(obs: list, start: int, stop: int, cond: bool, values: Any) -> None:
    if cond:
        if stop - start == 1:
            obs[start] = values
        else:
            obs[start:stop] = values


def _array_put(obs: np.ndarray, start: int, stop: int, cond: np.ndarray, values: Any) -> None:
    if isinstance(values, list):  # one array per slot
        values = np.stack(values, axis=1)
    elif values.ndim == 1:
        values = values[:, None]
    obs[:, start:stop] = np.where(cond[:, None], values, obs[:, start:stop])


Scalar.put = staticmethod(_scalar_put)  # obs[start:stop] = values where cond
Array.put = staticmethod(_array_put)
Scalar.join = staticmethod(_scalar_join)  # one row of values: a's entries, then b's (a list of scalars or arrays)
Array.join = staticmethod(_array_join)
