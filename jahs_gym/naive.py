"""The JAHS-Bench-201 way to predict: one XGBoost model and one prediction call per metric, kept as the baseline
that ``benchmarks/surrogate_speed.py`` and ``benchmarks/env_speed.py`` measure the fast predictor against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jahs_gym import transforms as tf
from jahs_gym.xgb_model import booster


class NaivePredictor:
    """The JAHS-Bench-201 way: one XGBoost model per metric, one prediction call per metric.

    ``Booster.inplace_predict`` is the call that ``XGBRegressor.predict`` makes (without needing
    scikit-learn).

    Args:
        model_files: Metric -> model file (or its bytes).
        transforms: Metric -> its fitted transform.
        bounds: Metric -> (lo, hi) used to clip outputs.
        linear: Metric -> (feature indices, [intercept, coefs]) of a linear base added to the model's output.
    """

    def __init__(self, model_files: dict[str, Path | bytes], transforms: dict[str, str],
                 bounds: dict[str, tuple[float, float]],
                 linear: dict[str, tuple[list[int], list[float]]] | None = None) -> None:
        self.metrics = tuple(model_files)
        self.models = {m: booster(f) for m, f in model_files.items()}
        self.transforms, self.bounds, self.linear = transforms, bounds, linear or {}

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Every metric's output in its fitted space, one XGBoost call per metric.

        Args:
            x: Encoded rows, (rows, n_features).

        Returns:
            (rows, metrics) float64.
        """
        cols = []
        for m in self.metrics:
            y = self.models[m].inplace_predict(x).astype(np.float64)
            if m in self.linear:
                idx, coef = self.linear[m]
                y = y + coef[0] + x[:, idx].astype(np.float64) @ np.asarray(coef[1:])
            cols.append(y)
        return np.stack(cols, axis=1)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Inverse transforms and clipping.

        Args:
            raw: (rows, metrics) outputs of :meth:`predict_raw`.

        Returns:
            A new (rows, metrics) float64 array in metric units, clipped to the bounds.
        """
        return np.stack([np.clip(tf.inverse(self.transforms[m], raw[:, j]), *self.bounds[m])
                         for j, m in enumerate(self.metrics)], axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Every metric for every row of the encoded X, one XGBoost call per metric.

        Args:
            x: Encoded rows, (rows, n_features).

        Returns:
            (rows, metrics) float64 in metric units, clipped to the bounds.
        """
        return self.finish(self.predict_raw(x))
