"""The value rules of the JAHS-Bench-201 space, shared by every entry point, and their error :class:`SpaceError`.

A choice must be one of its values (no ``True`` for ``1``), a real number must lie in its range, where a value within
a few float32 ulps of a bound (float32 rounding, ``exp(log(b))``) is clamped to that bound, and an epoch is a whole
number >= 1. :mod:`jahs_gym.space` applies them (and re-exports these names); this module imports nothing of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np


class SpaceError(ValueError):
    """A configuration or fidelity value that the JAHS-Bench-201 space does not allow."""


def _check_choice(owner: str, key: str, value: Any, allowed: tuple) -> Any:
    if isinstance(value, float) and math.isnan(value):
        raise SpaceError(f"{owner}: {key} is NaN; allowed: {list(allowed)}")
    for a in allowed:
        if type(a) is bool:
            if isinstance(value, (bool, np.bool_)) and bool(value) == a:
                return a
        elif isinstance(a, str):
            if isinstance(value, str) and value == a:
                return a
        elif isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and value == a:
            return a
    raise SpaceError(f"{owner}: {key}={value!r} is not allowed; allowed: {list(allowed)}")


def bound_slack(bound: float) -> float:
    """How far outside a range's bound a value may lie and still mean that bound: 4 float32 ulps of the bound.

    Covers the bound rounded to float32 (half an ulp) and a few ulps of float64 round-off such as
    ``exp(log(1e-2)) = 0.010000000000000004``; a value within the slack is clamped to the bound.

    Args:
        bound: The range's bound.

    Returns:
        The slack, >= 0.
    """
    return 4.0 * float(np.spacing(np.float32(abs(bound))))


def in_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Which of ``values`` a range [lo, hi] takes (NaN never): the rule of :func:`check_real`, vectorised.

    Args:
        values: The values.
        lo: The lower bound.
        hi: The upper bound.

    Returns:
        A boolean array, True where a value lies in the range or within its bounds' slack.
    """
    return (values >= lo - bound_slack(lo)) & (values <= hi + bound_slack(hi))


def check_real(owner: str, key: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float in [lo, hi] (clamped if within :func:`bound_slack` of a bound), or one SpaceError.

    Args:
        owner: Who checks (the error's prefix).
        key: The value's name.
        value: The value.
        lo: The lower bound.
        hi: The upper bound.

    Returns:
        The value as a float in [lo, hi].

    Raises:
        SpaceError: Not a real number (a bool is not), NaN, or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise SpaceError(f"{owner}: {key}={value!r} must be a real number in [{lo:g}, {hi:g}] "
                         f"(got type {type(value).__name__})")
    v = float(value)
    if math.isnan(v):
        raise SpaceError(f"{owner}: {key} is NaN; allowed: a real number in [{lo:g}, {hi:g}]")
    if not in_range(np.float64(v), lo, hi):
        raise SpaceError(f"{owner}: {key}={v!r} is out of range; allowed: [{lo:g}, {hi:g}] (values within "
                         f"4 float32 ulps of a bound are clamped to it)")
    return min(max(v, lo), hi)


def check_epoch(owner: str, value: Any, max_epochs: int | None = None) -> int:
    """An epoch count: a whole number >= 1 (and <= ``max_epochs`` when given), or one SpaceError.

    Args:
        owner: Who checks (the error's prefix).
        value: The epoch (an integer, or a float with an integer value).
        max_epochs: The largest epoch allowed; None for no limit.

    Returns:
        The epoch as an int.

    Raises:
        SpaceError: Not a whole number >= 1, or above ``max_epochs``.
    """
    e = value
    if isinstance(e, (bool, np.bool_)) or not isinstance(e, (Integral, float)) or (
            isinstance(e, float) and not e.is_integer()) or int(e) < 1:
        hint = (" (a multi-fidelity optimiser's real budget, e.g. DEHB's 3.33: map it yourself, e.g. "
                "round(budget), or search jahs_gym.configspace.fidelity_space(), whose epoch is an ordinal)"
                if isinstance(e, float) and math.isfinite(e) and e >= 1 else "")
        raise SpaceError(f"{owner}: epoch={e!r} is not allowed; allowed: an integer >= 1{hint}")
    if max_epochs is not None and int(e) > max_epochs:
        raise SpaceError(f"{owner}: epoch={int(e)} is out of range; allowed: 1..{max_epochs} "
                         "(the max epoch count of this task's protocol)")
    return int(e)


def _reject_unknown(owner: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise SpaceError(f"{owner}: unknown key(s) {unknown}; allowed keys: {list(allowed)}")

