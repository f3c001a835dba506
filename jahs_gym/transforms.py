"""Metric transforms: the one place that says what "none", "log" and "log1p" mean.

The surrogates fit a metric in its transform space (``jahs_gym.metrics.Metric.transform``); the
predictor (numpy and the C kernel, by :data:`CODES`), the fit and the environment's observation all
use these functions.
"""

from __future__ import annotations

import math

import numpy as np

TRANSFORMS = ("none", "log", "log1p")
CODES = {"none": 0, "log": 1, "log1p": 2}  # the C kernel's transform codes (jahs_gym/_forest.c, jg_finish)
LOG_FLOOR = 1e-12  # log(v) of v <= 0 is log(LOG_FLOOR): times and sizes are never exactly 0


def check(transform: str) -> str:
    if transform not in CODES:
        raise ValueError(f"transform {transform!r} is not known; allowed: {list(TRANSFORMS)}")
    return transform


def forward(transform: str, v: np.ndarray) -> np.ndarray:
    """The fitted space of metric values ``v`` (arrays)."""
    if transform == "log":
        return np.log(np.maximum(v, LOG_FLOOR))
    if transform == "log1p":
        return np.log1p(np.maximum(v, 0.0))
    check(transform)
    return np.asarray(v, dtype=np.float64)


def inverse(transform: str, y: np.ndarray) -> np.ndarray:
    """Metric units of fitted-space values ``y`` (arrays)."""
    if transform == "log":
        return np.exp(y)
    if transform == "log1p":
        return np.expm1(y)
    check(transform)
    return y


def forward_scalar(transform: str, v: float) -> float:
    """:func:`forward` of one float, without numpy (hot paths)."""
    if transform == "log":
        return math.log(v if v > LOG_FLOOR else LOG_FLOOR)
    if transform == "log1p":
        return math.log1p(v if v > 0.0 else 0.0)
    return float(v)
