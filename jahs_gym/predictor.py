"""Fast prediction of every metric of a bundle at once.

:class:`ForestPredictor` compiles all XGBoost forests of a bundle into flat node arrays and walks
them in one call per batch: with the small C kernel ``jahs_gym/_forest.c`` when it was built at
install time, else with a vectorised numpy walk (slower, same numbers). :class:`NaivePredictor` is
the JAHS-Bench-201 way (one XGBoost prediction call per metric: ``Booster.inplace_predict``, which is what
``XGBRegressor.predict`` runs), kept as the baseline that
``benchmarks/surrogate_speed.py`` measures against.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jahs_gym.metrics import BY_NAME


def _inverse(transform: str, y: np.ndarray) -> np.ndarray:
    if transform == "log":
        return np.exp(y)
    if transform == "log1p":
        return np.expm1(y)
    return y


def forward_transform(transform: str, v: np.ndarray) -> np.ndarray:
    if transform == "log":
        return np.log(np.maximum(v, 1e-12))
    if transform == "log1p":
        return np.log1p(np.maximum(v, 0.0))
    return v


def _load_kernel() -> ctypes.CDLL | None:
    try:
        from jahs_gym import _forest  # noqa: F401  (built by setup.py; optional)
    except ImportError:
        return None
    lib = ctypes.CDLL(_forest.__file__)
    fn = lib.jg_predict
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [p, i64, i64, p, p, p, p, p, p, p, i64, i64, p]
    fn.restype = None
    return lib


_KERNEL = _load_kernel()


def parse_booster_json(raw: dict) -> tuple[float, list[dict]]:
    """(base score, trees) of an XGBoost JSON model (gbtree, reg:squarederror)."""
    learner = raw["learner"]
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise ValueError(f"only gbtree models are supported, not {booster.get('name')!r}")
    base = learner["learner_model_param"]["base_score"]
    base = float(base.strip("[]").split(",")[0])
    return base, booster["model"]["trees"]


class ForestPredictor:
    """All metrics' forests as one flat forest; ``predict(X)`` returns (rows, metrics) in metric units.

    ``models``: metric name -> parsed XGBoost JSON dict; ``transforms``: metric -> "none"/"log"/"log1p";
    ``bounds``: metric -> (lo, hi) used to clip outputs. ``backend`` is "c" or "numpy".
    """

    def __init__(self, models: dict[str, dict], transforms: dict[str, str], bounds: dict[str, tuple[float, float]],
                 n_features: int, backend: str | None = None) -> None:
        self.metrics: tuple[str, ...] = tuple(models)
        self.n_features = n_features
        feat, thr, left, right, value, roots, tree_out, base = [], [], [], [], [], [], [], []
        offset = 0
        max_depth = 0
        for m_idx, name in enumerate(self.metrics):
            b, trees = parse_booster_json(models[name])
            base.append(b)
            for t in trees:
                lc = np.asarray(t["left_children"], dtype=np.int64)
                rc = np.asarray(t["right_children"], dtype=np.int64)
                leaf = lc < 0
                sc = np.asarray(t["split_conditions"], dtype=np.float64)
                si = np.asarray(t["split_indices"], dtype=np.int64)
                if np.any(si[~leaf] >= n_features):
                    raise ValueError(f"model {name!r} splits on feature {int(si[~leaf].max())}, "
                                     f"but the encoding has {n_features}")
                n = len(lc)
                idx = np.arange(n)
                feat.append(np.where(leaf, -1, si).astype(np.int32))
                thr.append(np.where(leaf, 0.0, sc).astype(np.float32))
                left.append(np.where(leaf, idx, lc).astype(np.int32) + offset)
                right.append(np.where(leaf, idx, rc).astype(np.int32) + offset)
                value.append(np.where(leaf, sc, 0.0))
                roots.append(offset)
                tree_out.append(m_idx)
                max_depth = max(max_depth, _depth(lc, rc))
                offset += n
        if offset >= 2**31:
            raise ValueError("forest too large for int32 node indices")
        cat = np.concatenate
        self.feat, self.thr = np.ascontiguousarray(cat(feat)), np.ascontiguousarray(cat(thr))
        self.left, self.right = np.ascontiguousarray(cat(left)), np.ascontiguousarray(cat(right))
        self.value = np.ascontiguousarray(cat(value))
        self.roots = np.asarray(roots, dtype=np.int64)
        self.tree_out = np.asarray(tree_out, dtype=np.int32)
        self.base = np.asarray(base, dtype=np.float64)
        self.max_depth = max_depth
        self.n_trees, self.n_nodes = len(roots), offset
        self.transforms = tuple(transforms[m] for m in self.metrics)
        self._log = np.array([t == "log" for t in self.transforms])
        self._log1p = np.array([t == "log1p" for t in self.transforms])
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
        self._ptrs = tuple(a.ctypes.data for a in (self.feat, self.thr, self.left, self.right, self.value,
                                                     self.roots, self.tree_out))
        # one-row buffers reused by predict_one (the env's hot path)
        self._x1 = np.zeros((1, n_features), dtype=np.float32)
        self._o1 = np.zeros((1, len(self.metrics)), dtype=np.float64)
        self._x1p, self._o1p = self._x1.ctypes.data, self._o1.ctypes.data
        self._tree_onehot = None

    # ------------------------------------------------------------------------------------ raw
    def predict_raw(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model outputs in the fitted (transformed) space, (rows, metrics) float64."""
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
            _KERNEL.jg_predict(x.ctypes.data, rows, self.n_features, *self._ptrs[:6], self._ptrs[6], self.n_trees,
                               len(self.metrics), out.ctypes.data)
        else:
            out += self._walk_numpy(x)
        return out

    def _walk_numpy(self, x: np.ndarray) -> np.ndarray:
        rows = x.shape[0]
        node = np.broadcast_to(self.roots, (rows, self.n_trees)).copy()
        r = np.arange(rows)[:, None]
        for _ in range(self.max_depth):
            f = self.feat[node]
            go_left = x[r, np.maximum(f, 0)] < self.thr[node]
            node = np.where(go_left, self.left[node], self.right[node])
        if self._tree_onehot is None:
            oh = np.zeros((self.n_trees, len(self.metrics)))
            oh[np.arange(self.n_trees), self.tree_out] = 1.0
            self._tree_onehot = oh
        return self.value[node] @ self._tree_onehot

    # -------------------------------------------------------------------------------- metrics
    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Inverse transforms and clipping, in place."""
        if self._log.any():
            raw[:, self._log] = np.exp(raw[:, self._log])
        if self._log1p.any():
            raw[:, self._log1p] = np.expm1(raw[:, self._log1p])
        np.clip(raw, self.lo, self.hi, out=raw)
        return raw

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Every metric for every row of the encoded X, in metric units, clipped to the bounds."""
        return self.finish(self.predict_raw(x))

    def predict_one(self, x_row: np.ndarray) -> np.ndarray:
        """One encoded row -> a fresh (metrics,) array; reuses internal buffers (the env's hot path)."""
        self._x1[0] = x_row
        if self.backend == "c":
            o = self._o1
            o[0] = self.base
            _KERNEL.jg_predict(self._x1p, 1, self.n_features, *self._ptrs, self.n_trees, len(self.metrics), self._o1p)
            return self.finish(o.copy())[0]
        return self.predict(self._x1)[0]


def _depth(lc: np.ndarray, rc: np.ndarray) -> int:
    depth = np.zeros(len(lc), dtype=np.int64)
    best = 0
    for i in range(len(lc)):  # parents precede children in XGBoost's node order
        for c in (lc[i], rc[i]):
            if c >= 0:
                depth[c] = depth[i] + 1
                best = max(best, int(depth[c]))
    return best


class NaivePredictor:
    """The JAHS-Bench-201 way: one XGBoost model per metric, one prediction call per metric.

    ``Booster.inplace_predict`` is the call that ``XGBRegressor.predict`` makes (without needing
    scikit-learn).
    """

    def __init__(self, model_files: dict[str, Path], transforms: dict[str, str],
                 bounds: dict[str, tuple[float, float]]) -> None:
        from xgboost import Booster

        self.metrics = tuple(model_files)
        self.models = {m: Booster(model_file=str(f)) for m, f in model_files.items()}
        self.transforms, self.bounds = transforms, bounds

    def predict(self, x: np.ndarray) -> np.ndarray:
        cols = []
        for m in self.metrics:
            y = self.models[m].inplace_predict(x).astype(np.float64)
            lo, hi = self.bounds[m]
            cols.append(np.clip(_inverse(self.transforms[m], y), lo, hi))
        return np.stack(cols, axis=1)


def load_forest(model_files: dict[str, Path], transforms: dict[str, str], bounds: dict[str, tuple[float, float]],
                n_features: int, backend: str | None = None) -> ForestPredictor:
    """Parse XGBoost model files (JSON or UBJ) into one :class:`ForestPredictor`."""
    from xgboost import Booster

    models = {}
    for m, f in model_files.items():
        b = Booster(model_file=str(f))
        models[m] = json.loads(bytes(b.save_raw(raw_format="json")))
    return ForestPredictor(models, transforms, bounds, n_features, backend)


def metric_bounds(names: Sequence[str], observed: dict[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """Clip bounds: the observed [min, max] of the training table within the schema's hard bounds."""
    out = {}
    for n in names:
        m = BY_NAME[n]
        lo, hi = observed[n]
        out[n] = (max(m.lo, float(lo)), min(m.hi, float(hi)) if math.isfinite(m.hi) else float(hi))
    return out
