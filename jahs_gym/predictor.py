"""Fast prediction of every metric of a bundle at once.

:class:`ForestPredictor` compiles all XGBoost forests of a bundle into flat node arrays and walks
them in one call per batch: with the small C kernel ``jahs_gym/_forest.c`` when it was built at
install time, else with a vectorised numpy walk (slower; the same numbers up to float rounding: its sums
run in another order). The kernel's loading lives in :mod:`jahs_gym.kernel`, the one-row predictor and the
observation's scaler in :mod:`jahs_gym.rows`, and the JAHS-Bench-201 baseline (one XGBoost call per metric) in
:mod:`jahs_gym.naive`; their names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jahs_gym import transforms as tf
from jahs_gym.kernel import GROUP, KERNEL_ABI, NODE_DTYPE  # noqa: F401  (KERNEL_ABI: this module's API too)
from jahs_gym.kernel import KERNEL as _KERNEL
from jahs_gym.naive import NaivePredictor  # noqa: F401  (re-exported)
from jahs_gym.rows import RowPredictor, Scaler
from jahs_gym.xgb_model import (  # noqa: F401  (re-exported: read_booster_json, ModelError are used from here)
    ModelError,
    booster,
    layout_tree,
    parse_booster_json,
    read_booster_json,
)


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
