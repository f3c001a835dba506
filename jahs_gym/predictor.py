"""Fast prediction of every metric of a bundle at once.

:class:`ForestPredictor` compiles all XGBoost forests of a bundle into flat node arrays and walks
them in one call per batch: with the small C kernel ``jahs_gym/_forest.c`` when it was built at
install time, else with a vectorised numpy walk (slower; the same numbers up to float rounding: its sums
run in another order). :class:`NaivePredictor` is
the JAHS-Bench-201 way (one XGBoost prediction call per metric: ``Booster.inplace_predict``, which is what
``XGBRegressor.predict`` runs), kept as the baseline that
``benchmarks/surrogate_speed.py`` measures against.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jahs_gym import transforms as tf
from jahs_gym.xgb_model import (  # noqa: F401  (re-exported: read_booster_json, ModelError are used from here)
    ModelError,
    booster,
    layout_tree,
    parse_booster_json,
    read_booster_json,
)

KERNEL_ABI = 4  # jg_abi() of the _forest.c these ctypes signatures match


def _load_kernel() -> ctypes.CDLL | None:
    try:
        from jahs_gym import _forest  # built by setup.py; optional
    except ImportError:
        return None
    lib = ctypes.CDLL(_forest.__file__)
    abi = lib.jg_abi() if hasattr(lib, "jg_abi") else 1
    if abi != KERNEL_ABI:  # a stale build (editable install, _forest.c changed since): its signatures differ
        warnings.warn(f"the built C forest kernel {_forest.__file__} has ABI {abi}, these sources expect "
                      f"{KERNEL_ABI}; using the numpy backend (slower; the same numbers up to float rounding). "
                      "Rebuild it: "
                      "pip install --no-deps --no-build-isolation -e .", RuntimeWarning, stacklevel=2)
        return None
    fn = lib.jg_predict
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [p, i64, i64, p, p, p, p, p, i64, i64, p]
    fn.restype = None
    lib.jg_finish.argtypes = [p, i64, i64, p, p, p]
    lib.jg_finish.restype = None
    lib.jg_predict_one.argtypes = [p, i64, p, p, p, p, p, i64, i64, p, p, p, i64, p, p, p, p, p]
    lib.jg_predict_mt.argtypes = [p, i64, i64, p, p, p, p, p, i64, i64, p, i64]
    lib.jg_predict_mt.restype = None
    lib.jg_predict_one.restype = None
    lib.jg_scale.argtypes = [p, i64, i64, p, p, p, i64, p]
    lib.jg_scale.restype = None
    lib.predict_row = _forest.predict_row  # the one-row hot path (RowPredictor), a Python function: no ctypes
    return lib


_KERNEL = _load_kernel()


NODE_DTYPE = np.dtype([("thr", "<f4"), ("feat", "<i4"), ("left", "<i4")])  # matches node_t in _forest.c
GROUP = 8  # trees walked together by the C kernel


class ForestPredictor:
    """All metrics' forests as one flat forest; ``predict(X)`` returns (rows, metrics) in metric units.

    Args:
        models: Metric name -> parsed XGBoost JSON dict.
        transforms: Metric -> its fitted transform ("none", "log" or "log1p").
        bounds: Metric -> (lo, hi) used to clip outputs.
        n_features: The encoding's feature count.
        backend: "c" or "numpy"; None for "c" when the C kernel is built, else "numpy".
        threads: Threads for batches of at least ``MT_ROWS`` rows (C backend); None for ``JAHS_GYM_THREADS``
            or min(2, CPUs).
        linear: Metric -> (feature indices, [intercept, coefs]) of a linear base added to the trees.
        depth_limit: Metric -> the deepest tree allowed (the manifest's ``max_depth``).

    Raises:
        ModelError: A tree that is not a valid tree (named by metric and index), or a forest too large.
        RuntimeError: ``backend="c"`` without a built C kernel.
        ValueError: Any other ``backend``.
    """

    MT_ROWS = 512  # batches at least this large are split over ``threads`` threads (C backend)

    def __init__(self, models: dict[str, dict], transforms: dict[str, str], bounds: dict[str, tuple[float, float]],
                 n_features: int, backend: str | None = None, threads: int | None = None,
                 linear: dict[str, tuple[list[int], list[float]]] | None = None,
                 depth_limit: dict[str, int] | None = None) -> None:
        self.metrics: tuple[str, ...] = tuple(models)
        default_threads = os.environ.get("JAHS_GYM_THREADS", min(2, os.cpu_count() or 1))
        self.threads = int(threads if threads is not None else default_threads)
        self.n_features = n_features
        trees, base = [], []
        for m_idx, name in enumerate(self.metrics):
            b, raw_trees = parse_booster_json(models[name])
            base.append(b)
            for i, t in enumerate(raw_trees):
                try:
                    thr, feat, left, value, depth = layout_tree(t, n_features, (depth_limit or {}).get(name))
                except ModelError as e:
                    raise ModelError(f"model {name!r}, tree {i}: {e}") from None
                trees.append((depth, m_idx, thr, feat, left, value))
        trees.sort(key=lambda t: t[0])  # similar depths share a group of 8
        n_pad = -len(trees) % GROUP
        self.n_trees = len(trees)
        parts_thr, parts_feat, parts_left, parts_val, roots, tree_out, depths = [], [], [], [], [], [], []
        offset = 0
        for depth, m_idx, thr, feat, left, value in trees:
            parts_thr.append(thr)
            parts_feat.append(feat)
            parts_left.append(left + offset)
            parts_val.append(value)
            roots.append(offset)
            tree_out.append(m_idx)
            depths.append(depth)
            offset += len(thr)
        # padding trees: one shared leaf of value 0
        parts_thr.append(np.array([np.inf], np.float32))
        parts_feat.append(np.array([0]))
        parts_left.append(np.array([offset]))
        parts_val.append(np.array([0.0], np.float32))
        roots += [offset] * n_pad
        tree_out += [0] * n_pad
        depths += [0] * n_pad
        self.n_nodes = offset + 1
        if self.n_nodes >= 2**31:
            raise ModelError("forest too large for int32 node indices")
        self.nodes = np.empty(self.n_nodes, dtype=NODE_DTYPE)
        self.nodes["thr"] = np.concatenate(parts_thr)
        self.nodes["feat"] = np.concatenate(parts_feat)
        self.nodes["left"] = np.concatenate(parts_left)
        self.value = np.ascontiguousarray(np.concatenate(parts_val), dtype=np.float32)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.tree_out = np.asarray(tree_out, dtype=np.int32)
        depths_arr = np.asarray(depths, dtype=np.int32).reshape(-1, GROUP)
        self.group_depth = np.ascontiguousarray(depths_arr.max(axis=1), dtype=np.int32)
        self.base = np.asarray(base, dtype=np.float64)
        # linear bases: metric -> (feature indices, [intercept, coefs]); added after the trees
        zidx = sorted({i for idx, _ in (linear or {}).values() for i in idx})
        self.zidx = np.asarray(zidx, dtype=np.int32)
        self.zcoef = np.zeros((len(zidx), len(self.metrics)))
        for m, (idx, coef) in (linear or {}).items():
            j = self.metrics.index(m)
            self.base[j] += coef[0]
            for i, c in zip(idx, coef[1:]):
                self.zcoef[zidx.index(i), j] = c
        self.max_depth = int(self.group_depth.max()) if len(self.group_depth) else 0
        self.transforms = tuple(transforms[m] for m in self.metrics)
        self._tcode = np.array([tf.CODES[tf.check(t)] for t in self.transforms], dtype=np.int32)
        self.lo = np.array([bounds[m][0] for m in self.metrics], dtype=np.float64)
        self.hi = np.array([bounds[m][1] for m in self.metrics], dtype=np.float64)
        if backend is None:
            backend = "c" if _KERNEL is not None else "numpy"
        if backend == "c" and _KERNEL is None:
            raise RuntimeError("the C forest kernel is not built; reinstall jahs-gym with a C compiler "
                               "(pip install --force-reinstall --no-deps jahs-gym) or use backend='numpy'")
        if backend not in ("c", "numpy"):
            raise ValueError(f"backend={backend!r}; allowed: 'c', 'numpy'")
        self.backend = backend
        self._tree_onehot = None
        self._freeze()
        self._bind()

    def _freeze(self) -> None:
        """Make the forest's arrays read-only: they are shared by every env, thread and copy."""
        for a in (self.nodes, self.value, self.roots, self.tree_out, self.group_depth, self.base, self.zidx,
                  self.zcoef, self._tcode, self.lo, self.hi):
            a.flags.writeable = False

    def _bind(self) -> None:
        """The raw addresses of the (read-only) forest arrays that the C kernel reads; never pickled."""
        self._forest_args = (self.nodes.ctypes.data, self.value.ctypes.data, self.roots.ctypes.data,
                             self.group_depth.ctypes.data, self.tree_out.ctypes.data, len(self.group_depth),
                             len(self.metrics))
        self._fin_ptrs = tuple(a.ctypes.data for a in (self._tcode, self.lo, self.hi))
        self._one_args = (self.n_features, *self._forest_args, self.base.ctypes.data, self.zidx.ctypes.data,
                          self.zcoef.ctypes.data, len(self.zidx), *self._fin_ptrs)

    # ownership: the forest is immutable, so copies share it; pickles carry the arrays, never addresses
    def __deepcopy__(self, memo: dict) -> ForestPredictor:
        return self

    def __copy__(self) -> ForestPredictor:
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for k in ("_forest_args", "_fin_ptrs", "_one_args", "_tree_onehot"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tree_onehot = None
        self._freeze()  # unpickled arrays come back writeable
        if self.backend == "c" and _KERNEL is None:
            # the unpickling process has no built kernel: as a fresh predictor there (C's numbers up to rounding)
            self.backend = "numpy"
        self._bind()

    # ------------------------------------------------------------------------------------ raw
    def predict_raw(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model outputs in the fitted (transformed) space, (rows, metrics) float64.

        Args:
            x: Encoded rows, (rows, n_features).
            out: A (rows, metrics) float64 array to write into; None for a new one.

        Returns:
            ``out`` (or the new array).

        Raises:
            ValueError: ``x`` is not (rows, n_features).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"X has shape {x.shape}; expected (rows, {self.n_features})")
        rows = x.shape[0]
        if out is None:
            out = np.empty((rows, len(self.metrics)), dtype=np.float64)
        out[:] = self.base
        if rows == 0:
            return out
        if self.backend == "c":
            threads = self.threads if rows >= self.MT_ROWS else 1
            _KERNEL.jg_predict_mt(x.ctypes.data, rows, self.n_features, *self._forest_args, out.ctypes.data, threads)
        else:
            out += self._walk_numpy(x)
        for j, col in enumerate(self.zidx.tolist()):  # the C kernel's order (one term at a time): the same bits
            out += x[:, col, None].astype(np.float64) * self.zcoef[j]
        return out

    def _walk_numpy(self, x: np.ndarray) -> np.ndarray:
        rows = x.shape[0]
        node = np.broadcast_to(self.roots, (rows, len(self.roots))).copy()
        r = np.arange(rows)[:, None]
        thr, feat, left = self.nodes["thr"], self.nodes["feat"], self.nodes["left"]
        for _ in range(self.max_depth):
            node = left[node] + (x[r, feat[node]] >= thr[node])
        if self._tree_onehot is None:
            oh = np.zeros((len(self.roots), len(self.metrics)))
            oh[np.arange(len(self.roots)), self.tree_out] = 1.0
            self._tree_onehot = oh
        return self.value[node].astype(np.float64) @ self._tree_onehot

    # -------------------------------------------------------------------------------- metrics
    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Inverse transforms and clipping, in place.

        Args:
            raw: (rows, metrics) outputs of :meth:`predict_raw`; overwritten.

        Returns:
            ``raw``, now in metric units and clipped to the bounds.
        """
        if self.backend == "c" and raw.flags.c_contiguous and raw.dtype == np.float64:
            _KERNEL.jg_finish(raw.ctypes.data, raw.shape[0], raw.shape[1], *self._fin_ptrs)
            return raw
        for name, code in tf.CODES.items():
            cols = self._tcode == code
            if name == "none":
                continue
            if cols.any():
                raw[:, cols] = tf.inverse(name, raw[:, cols])
        np.clip(raw, self.lo, self.hi, out=raw)
        return raw

    def scaler(self, cols: Sequence[int], lo: Sequence[float], span: Sequence[float]) -> Scaler:
        """A :class:`Scaler` of this forest's raw outputs (same backend).

        Args:
            cols: The output columns to scale.
            lo: The fitted-space value that maps to 0, one per column.
            span: The fitted-space width that maps to 1 (positive), one per column.

        Returns:
            The scaler.
        """
        return Scaler(cols, lo, span, self.backend, len(self.metrics))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Every metric for every row of the encoded X, in metric units, clipped to the bounds.

        Args:
            x: Encoded rows, (rows, n_features).

        Returns:
            (rows, metrics) float64.
        """
        return self.finish(self.predict_raw(x))

    def row_predictor(self, scaler: Scaler | None = None) -> RowPredictor:
        """A one-row predictor with buffers of its own (one per env: never share it between envs or threads).

        Args:
            scaler: Also write ``scaler``'s scaling of every prediction's raw outputs (``RowPredictor.scaled``).

        Returns:
            A :class:`RowPredictor` on this forest.
        """
        return RowPredictor(self, scaler)

    def predict_one(self, x_row: np.ndarray) -> np.ndarray:
        """One encoded row (float32, contiguous) -> a fresh (metrics,) array.

        Args:
            x_row: The encoded row, (n_features,).

        Returns:
            Every metric in metric units, clipped to the bounds.
        """
        if self.backend == "c":
            if x_row.dtype != np.float32 or not x_row.flags.c_contiguous or x_row.shape != (self.n_features,):
                x_row = np.ascontiguousarray(x_row, dtype=np.float32).reshape(self.n_features)
            out = np.empty(len(self.metrics))
            _KERNEL.jg_predict_one(x_row.ctypes.data, *self._one_args, None, out.ctypes.data)
            return out
        return self.predict(np.asarray(x_row, dtype=np.float32).reshape(1, self.n_features))[0]


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


def load_forest(model_files: dict[str, Path | bytes], transforms: dict[str, str],
                bounds: dict[str, tuple[float, float]], n_features: int, backend: str | None = None,
                threads: int | None = None, linear: dict[str, tuple[list[int], list[float]]] | None = None,
                depth_limit: dict[str, int] | None = None) -> ForestPredictor:
    """Parse XGBoost models (files, or their bytes: JSON or UBJ) into one :class:`ForestPredictor`.

    Args:
        model_files: Metric -> model file (or its bytes).
        transforms: Metric -> its fitted transform.
        bounds: Metric -> (lo, hi) used to clip outputs.
        n_features: The encoding's feature count.
        backend: As :class:`ForestPredictor` takes it.
        threads: As :class:`ForestPredictor` takes it.
        linear: As :class:`ForestPredictor` takes it.
        depth_limit: As :class:`ForestPredictor` takes it.

    Returns:
        The predictor.
    """
    models = {m: read_booster_json(f) for m, f in model_files.items()}
    return ForestPredictor(models, transforms, bounds, n_features, backend, threads, linear, depth_limit)
