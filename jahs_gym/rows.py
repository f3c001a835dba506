"""One row at a time through a forest (:class:`RowPredictor`, the environment's hot path) and the observation's
scale of raw outputs (:class:`Scaler`), each with the C kernel or numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from jahs_gym.kernel import KERNEL as _KERNEL

if TYPE_CHECKING:
    from jahs_gym.predictor import ForestPredictor


class Scaler:
    """Raw (fitted-space) outputs mapped to [0, 1]: ``clip((raw[:, cols] - lo) / span, 0, 1)`` (NaN stays NaN).

    The one rule of the env's observation scale, for batches (:meth:`__call__`) and, inside the C kernel's call,
    for one row (:class:`RowPredictor`). Read-only after construction.

    Args:
        cols: The output columns to scale.
        lo: The value that maps to 0, one per column.
        span: The width that maps to 1, one per column (positive).
        backend: "c" or "numpy", as the forest's.
        n_out: The outputs of the raw rows it scales (cols must lie in 0..n_out-1), when known.

    Raises:
        ValueError: Lengths differ, a span is not positive and finite, or a column is outside the outputs.
    """

    def __init__(self, cols: Sequence[int], lo: Sequence[float], span: Sequence[float], backend: str = "c",
                 n_out: int | None = None) -> None:
        # copies of their own (contiguous, as the C kernel reads them; a caller's array is never frozen or shared)
        self.cols = np.array(cols, dtype=np.int32, copy=True, order="C").reshape(-1)
        self.lo = np.array(lo, dtype=np.float64, copy=True, order="C").reshape(-1)
        self.span = np.array(span, dtype=np.float64, copy=True, order="C").reshape(-1)
        if not len(self.cols) == len(self.lo) == len(self.span) or not (np.isfinite(self.span).all()
                                                                          and (self.span > 0).all()):
            raise ValueError(f"Scaler: cols {self.cols.tolist()}, lo {self.lo.tolist()}, span {self.span.tolist()}: "
                             "one lo and one positive, finite span per column")
        self.n_out = n_out
        if len(self.cols) and (self.cols.min() < 0 or (n_out is not None and self.cols.max() >= n_out)):
            top = "n_out - 1" if n_out is None else n_out - 1
            raise ValueError(f"Scaler: cols {self.cols.tolist()}: allowed: 0..{top}")
        self.backend = "c" if backend == "c" and _KERNEL is not None else "numpy"
        for a in (self.cols, self.lo, self.span):
            a.flags.writeable = False

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Scale many rows.

        Args:
            raw: (rows, outputs) float64.

        Returns:
            A new (rows, len(cols)) float64 array.

        Raises:
            ValueError: ``raw`` is not 2-D or lacks a column the scaler reads.
        """
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        if raw.ndim != 2 or (len(self.cols) and self.cols.max() >= raw.shape[1]):
            raise ValueError(f"Scaler: raw has shape {raw.shape}; expected (rows, > {int(self.cols.max(initial=-1))})")
        if self.backend == "c":
            out = np.empty((raw.shape[0], len(self.cols)))
            _KERNEL.jg_scale(raw.ctypes.data, raw.shape[0], raw.shape[1], self.cols.ctypes.data, self.lo.ctypes.data,
                             self.span.ctypes.data, len(self.cols), out.ctypes.data)
            return out
        return np.clip((raw[:, self.cols] - self.lo) / self.span, 0.0, 1.0)

    def __reduce__(self) -> tuple:
        return (Scaler, (self.cols.tolist(), self.lo.tolist(), self.span.tolist(), self.backend, self.n_out))

    def __deepcopy__(self, memo: dict) -> Scaler:
        return self  # read-only


class RowPredictor:
    """One row at a time through a shared :class:`ForestPredictor`, into buffers this object owns.

    Encode into ``x`` in place (``x[:] = ...`` or through its memoryview ``xv``; the kernel reads the buffer it
    was given, so never rebind ``x``), call :meth:`__call__`, read ``y`` (metric units, clipped), ``raw`` (the
    fitted space) and, with a scaler, ``scaled``. Copies and pickles get buffers (and C addresses) of their own.

    Args:
        forest: The forest to predict with.
        scaler: Also scale every prediction's raw outputs into ``scaled`` (None: no ``scaled``).

    Raises:
        ValueError: The scaler reads a column the forest does not output.
    """

    def __init__(self, forest: ForestPredictor, scaler: Scaler | None = None) -> None:
        if scaler is not None and len(scaler.cols) and scaler.cols.max() >= len(forest.metrics):
            raise ValueError(f"RowPredictor: the scaler reads columns {scaler.cols.tolist()}; the forest has "
                             f"{len(forest.metrics)} outputs")
        self.forest, self.scaler = forest, scaler
        self.x = np.zeros(forest.n_features, dtype=np.float32)
        self.xv = memoryview(self.x)
        self.y = np.zeros(len(forest.metrics), dtype=np.float64)
        self.raw = np.zeros(len(forest.metrics), dtype=np.float64)
        self.scaled = np.zeros(len(scaler.cols) if scaler is not None else 0, dtype=np.float64)
        self._packed: bytes | None = None
        if forest.backend == "c":  # the addresses stay valid while this object holds the forest, scaler and buffers
            sc = ((scaler.cols.ctypes.data, scaler.lo.ctypes.data, scaler.span.ctypes.data, len(scaler.cols))
                  if scaler is not None else (0, 0, 0, 0))
            self._packed = np.array([self.x.ctypes.data, *forest._one_args, self.raw.ctypes.data,
                                     self.y.ctypes.data, *sc, self.scaled.ctypes.data], dtype=np.int64).tobytes()

    def __call__(self) -> np.ndarray:
        if self._packed is not None:
            _KERNEL.predict_row(self._packed)
        else:
            f = self.forest
            self.raw[:] = f.predict_raw(self.x[None, :])[0]
            self.y[:] = f.finish(self.raw[None, :].copy())[0]
            if self.scaler is not None:
                self.scaled[:] = self.scaler(self.raw[None, :])[0]
        return self.y

    def __reduce__(self) -> tuple:
        return (RowPredictor, (self.forest, self.scaler))

    def __deepcopy__(self, memo: dict) -> RowPredictor:
        return RowPredictor(self.forest, self.scaler)
