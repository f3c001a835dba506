"""Metric transforms: the one place that says what "none", "log", "log1p" and "logit" mean.

The surrogates fit a metric in its transform space (``jahs_gym.metrics.Metric.transform``); the
predictor (numpy and the C kernel, by :data:`CODES`), the fit and the environment's observation all
use these functions. A forest's sum of leaves is unbounded; in the transform space that is harmless:
"log" keeps times and sizes positive, "logit" keeps accuracies (percent) strictly inside (0, 100), so a
prediction never piles up at a bound by clipping.
"""

from __future__ import annotations

import math

import numpy as np

TRANSFORMS = ("none", "log", "log1p", "logit")
CODES = {"none": 0, "log": 1, "log1p": 2, "logit": 3}  # the C kernel's codes (jahs_gym/_forest.c, jg_finish)
LOG_FLOOR = 1e-12  # log(v) of v <= 0 is log(LOG_FLOOR): times and sizes are never exactly 0
LOGIT_EPS = 1e-3  # percent: logit of an accuracy of 0 % or 100 % is taken at 0.001 % or 99.999 %


def check(transform: str) -> str:
    """A transform's name, checked.

    Args:
        transform: One of :data:`TRANSFORMS`.

    Returns:
        ``transform`` unchanged.

    Raises:
        ValueError: It is not one of :data:`TRANSFORMS`.
    """
    if transform not in CODES:
        raise ValueError(f"transform {transform!r} is not known; allowed: {list(TRANSFORMS)}")
    return transform


def forward(transform: str, v: np.ndarray) -> np.ndarray:
    """Metric values in the fitted space.

    Args:
        transform: One of :data:`TRANSFORMS`.
        v: Metric values (an array, or anything numpy takes).

    Returns:
        The transformed values as float64: log floored at :data:`LOG_FLOOR`, log1p of values floored at 0, logit
        of percentages clipped to [:data:`LOGIT_EPS`, 100 - :data:`LOGIT_EPS`].
    """
    if transform == "log":
        return np.log(np.maximum(v, LOG_FLOOR))
    if transform == "log1p":
        return np.log1p(np.maximum(v, 0.0))
    if transform == "logit":
        p = np.clip(np.asarray(v, dtype=np.float64), LOGIT_EPS, 100.0 - LOGIT_EPS)
        return np.log(p / (100.0 - p))
    check(transform)
    return np.asarray(v, dtype=np.float64)


def inverse(transform: str, y: np.ndarray) -> np.ndarray:
    """Fitted-space values back in metric units (the inverse of :func:`forward`).

    Args:
        transform: One of :data:`TRANSFORMS`.
        y: Fitted-space values (an array).

    Returns:
        The values in metric units; a logit maps into (0, 100) percent whatever its size.
    """
    if transform == "log":
        return np.exp(y)
    if transform == "log1p":
        return np.expm1(y)
    if transform == "logit":
        with np.errstate(over="ignore"):
            return 100.0 / (1.0 + np.exp(-np.asarray(y, dtype=np.float64)))
    check(transform)
    return y


def forward_scalar(transform: str, v: float) -> float:
    """:func:`forward` of one float, without numpy (the env's hot path).

    Args:
        transform: One of :data:`TRANSFORMS`.
        v: One metric value; NaN stays NaN, as in :func:`forward`.

    Returns:
        The transformed value.
    """
    if v != v:
        check(transform)
        return v
    if transform == "log":
        return math.log(v if v > LOG_FLOOR else LOG_FLOOR)
    if transform == "log1p":
        return math.log1p(v if v > 0.0 else 0.0)
    if transform == "logit":
        p = LOGIT_EPS if v < LOGIT_EPS else 100.0 - LOGIT_EPS if v > 100.0 - LOGIT_EPS else v
        return math.log(p / (100.0 - p))
    check(transform)
    return float(v)
