"""Surrogate learners side by side: held-out accuracy quality, query time and model size.

Every learner is fitted and scored on the SAME grouped folds (``generation.fit.grouped_folds`` by config_id,
the bundle's seed 0, 5 folds), on the same features (``jahs_gym.space.encode_frame``) and in the same fitted
space (each metric's ``jahs_gym.metrics`` transform: ``logit`` for accuracies). Targets: valid_acc and
test_acc. Learners (``--learners``):

  xgb            today's XGBoost recipe: ``generation.fit.choose_params`` in every outer training part with the
                 shipped bundle's trials, ``PARSIMONY_TOLERANCE`` and fit_bundle's RMSE floor (the default,
                 ``--xgb-params choose``), or the params and tree count recorded in the shipped bundle's manifest
                 (``--xgb-params manifest``)
  xgb_mono       the recipe's params and tree count with a monotone constraint (+1) on the epoch feature
  xgb_mono_deep  monotone, deeper and longer: depth 8 (the C predictor's limit), eta 0.1, twice the trees
  xgb_curve      ONE multi-output XGBoost model (multi_strategy="multi_output_tree") that predicts the whole
                 learning curve of every target (targets x epochs outputs) from config + fidelity; scored on
                 the same per-row labels (the row's epoch picks its output)
  hgb            scikit-learn HistGradientBoostingRegressor
  lgbm           LightGBM (skipped, and said so, when ``import lightgbm`` fails)
  catboost       CatBoost, 500 oblivious trees of depth 6, lr 0.1 (skipped, and said so, when ``import catboost``
                 fails); also timed through the C predictor, its trees converted (``catboost_as_xgboost``)
  catboost_long  CatBoost, 1,500 trees, lr 0.05
  mlp            an ensemble of 5 torch MLPs (2 x 128, ReLU, standardised inputs and outputs, AdamW with a
                 one-cycle schedule over about 1,800 steps of batch 512, one thread, one network for all targets)

Each learner is fitted two ways (``--fit-on``): on single-run rows (every row of the table) and on seed-mean
rows (one row per (config, fidelity, epoch): the mean over seeds in the fitted space,
``generation.labels.seed_means``; a private helper with the same semantics when that module does not have it).
Held-out predictions are scored in percent (``generation.fit.quality``: R2 and Kendall tau) against (a) the
single-run labels and (b) the seed-mean labels. The goal: valid_acc against seed-mean labels, tau >= 0.85 and
R2 >= 0.90.

Query time: each learner's fold-0 model fitted on single-run rows answers every target for one row (cycling
through 512 table rows) and for a 1,024-row batch; medians of alternating rounds in one process, so machine
noise hits all alike. XGBoost forests answer through ``jahs_gym.predictor.ForestPredictor`` (the C kernel
path of the shipped bundles; ``inplace_predict`` is timed too, as the naive reference); the multi-output model
through ``inplace_predict`` (the C predictor walks scalar-leaf forests only); the others through their own
predict (the MLP ensemble as a numpy forward pass of its weights). Size: the saved model's bytes (XGBoost UBJ,
LightGBM text, CatBoost cbm, the MLP's torch state dicts, scikit-learn's pickle).

    python benchmarks/surrogate_learners.py                            # fashion_mnist, /tmp/fm_table.parquet
    python benchmarks/surrogate_learners.py --task mnist --json /tmp/learners_mnist.json
    python benchmarks/surrogate_learners.py --quick --learners xgb,mlp # a smoke run

Threads: 2 for every gradient-boosting library, 1 for torch and numpy's BLAS. The script sets
OMP_WAIT_POLICY=PASSIVE unless the environment sets it: on a machine whose cores other processes use,
busy-waiting OpenMP threads made 2-thread fits 3-20x slower. Timings on such a machine are noisy; compare
the ratios of one run. A full fashion_mnist run takes about 15-25 minutes on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# OpenMP threads that busy-wait (the default) fight the other processes of a loaded machine: 2-thread XGBoost and
# scikit-learn fits ran 3-20x slower than with 1 thread here. Sleeping waits fix that; set OMP_WAIT_POLICY=ACTIVE
# in the environment to measure the default. Set before any OpenMP library is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(ROOT))

from generation import fit as gfit  # noqa: E402
from jahs_gym.bundle import read_manifest  # noqa: E402
from jahs_gym.metrics import BY_NAME  # noqa: E402
from jahs_gym.space import FEATURES, N_FEATURES, encode_frame  # noqa: E402
from jahs_gym.transforms import forward, inverse  # noqa: E402

TARGETS: tuple[str, ...] = ("valid_acc", "test_acc")
LABEL_KEY: tuple[str, ...] = ("config_id", "fidelity_id", "epoch")
EPOCH = FEATURES.index("epoch")
NTHREAD = 2
SEED = 0
DEFAULT_TABLES = {"fashion_mnist": "/tmp/fm_table.parquet", "mnist": "/tmp/mn_table.parquet"}
GOAL = {"kendall_tau": 0.85, "r2": 0.90}  # valid_acc, held out, against seed-mean labels
FIT_ON = ("single", "mean")


def _shared(name: str) -> Callable:
    """``generation.fit``'s function ``name``, or ``generation.labels``' where it has moved there."""
    fn = getattr(gfit, name, None)
    if fn is None:
        from generation import labels

        fn = getattr(labels, name)
    return fn


quality = _shared("quality")
try:  # generation.labels' version also scores the table's own seed-mean labels (seeds="table")
    from generation.labels import noise_ceiling
except ImportError:
    noise_ceiling = _shared("noise_ceiling")


# ----------------------------------------------------------------------------------------------- labels
def _private_seed_means(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (config_id, fidelity_id, epoch): every other column from the first seed's row, each metric the
    mean over seeds in its fitted space (transformed back to metric units) and ``n_seeds``."""
    work = df.copy()
    for m in metrics:
        work[m] = forward(BY_NAME[m].transform, work[m].to_numpy(float))
    g = work.groupby(list(LABEL_KEY), sort=True)
    out = g.first()
    for m in metrics:
        out[m] = inverse(BY_NAME[m].transform, g[m].mean().to_numpy(float))
    out["n_seeds"] = g.size().to_numpy()
    return out.reset_index()


def seed_mean_frame(df: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, str]:
    """(seed-mean frame in metric units, where it came from): ``generation.labels.seed_means`` when it exists,
    else the private helper. The shared one's metric columns are taken as metric units or as fitted-space values,
    whichever matches the private helper (it must match one)."""
    mine = _private_seed_means(df, metrics)
    try:
        from generation.labels import seed_means
    except ImportError:
        return mine, "private helper (generation.labels.seed_means not there yet)"
    shared = seed_means(df, metrics)
    if not set(LABEL_KEY) <= set(shared.columns):
        shared = shared.reset_index()
    merged = mine[[*LABEL_KEY, *metrics]].merge(shared[[*LABEL_KEY, *metrics, "n_seeds"]], on=list(LABEL_KEY),
                                                suffixes=("", "_shared"), how="left")
    if len(shared) != len(mine) or merged[[f"{m}_shared" for m in metrics]].isna().any().any():
        raise ValueError(f"generation.labels.seed_means gives {len(shared)} rows, expected {len(mine)}")
    units = all(np.allclose(merged[m], merged[f"{m}_shared"], rtol=1e-6, atol=1e-6) for m in metrics)
    fitted = all(np.allclose(forward(BY_NAME[m].transform, merged[m].to_numpy(float)), merged[f"{m}_shared"],
                             rtol=1e-6, atol=1e-6) for m in metrics)
    if not (units or fitted):
        raise ValueError("generation.labels.seed_means disagrees with the private helper's semantics")
    if units:
        return shared.reset_index(drop=True), "generation.labels.seed_means"
    return mine, "generation.labels.seed_means (fitted-space columns; this script's frame in metric units)"


@dataclass
class Part:
    """Rows of one label set: the frame, its encoded features, fitted-space labels (rows, targets), its fold
    of every row and a run key (one learning curve)."""

    df: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    run: np.ndarray

    def take(self, idx: np.ndarray) -> Part:
        return Part(self.df.iloc[idx].reset_index(drop=True), self.x[idx], self.y[idx], self.fold[idx], self.run[idx])


def make_part(df: pd.DataFrame, targets: tuple[str, ...], fold_of: dict, run_cols: list[str]) -> Part:
    df = df.reset_index(drop=True)
    y = np.column_stack([forward(BY_NAME[t].transform, df[t].to_numpy(float)) for t in targets])
    run = pd.MultiIndex.from_frame(df[run_cols]).codes
    run_id = np.zeros(len(df), dtype=np.int64)
    for c in run:  # a dense id per distinct run_cols tuple
        run_id = run_id * (int(c.max()) + 1) + c
    return Part(df, np.ascontiguousarray(encode_frame(df), dtype=np.float32), y,
                df["config_id"].map(fold_of).to_numpy(), run_id)


# ---------------------------------------------------------------------------------------------- learners
def _xgb_params(params: dict[str, Any], seed: int = SEED, **extra: Any) -> dict[str, Any]:
    """generation.fit's XGBoost parameters, with nthread fixed."""
    return {"objective": "reg:squarederror", "tree_method": "hist", "nthread": NTHREAD, "seed": seed,
            "eta": params["learning_rate"], **{k: v for k, v in params.items() if k != "learning_rate"}, **extra}


def _mono() -> str:
    return "(" + ",".join("1" if i == EPOCH else "0" for i in range(N_FEATURES)) + ")"


@dataclass
class Settings:
    targets: tuple[str, ...]
    max_epochs: int
    quick: bool
    xgb_source: str  # "manifest" or "choose"
    manifest: Any  # the shipped bundle's jahs_gym.manifest.Manifest, or None
    trials: int
    mlp_epochs: int
    floors: dict[tuple[str, str], float] = field(default_factory=dict)  # fit_bundle's floor per (fit_on, target)
    context: tuple[str, int] = ("single", 0)  # (fit_on, fold) of the fit under way
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # "fit_on/fold/target" -> recipe's choice

    def recipe(self, target: str) -> tuple[dict[str, Any], int]:
        m = self.manifest.metrics.get(target) if self.manifest is not None else None
        params, n = (dict(m.raw["params"]), int(m.n_trees)) if m else (dict(gfit.CANDIDATES[0]), 200)
        return params, (min(n, 40) if self.quick else n)


class Learner:
    name = ""
    path = ""  # how queries are answered

    def __init__(self, s: Settings) -> None:
        self.s = s

    def fit(self, part: Part) -> Any:
        raise NotImplementedError

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Fitted-space outputs (rows, targets)."""
        raise NotImplementedError

    def size(self, model: Any) -> int:
        raise NotImplementedError

    def query(self, model: Any) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable, str]]:
        """path name -> (one row -> targets in percent, batch -> (rows, targets) in percent, description)."""
        def one(r: np.ndarray) -> np.ndarray:
            return _to_units(self.s.targets, self.predict(model, r[None, :])[0])

        def batch(x: np.ndarray) -> np.ndarray:
            return _to_units(self.s.targets, self.predict(model, x))
        return {self.name: (one, batch, self.path)}

    def info(self, model: Any) -> str:
        return ""


def _to_units(targets: tuple[str, ...], raw: np.ndarray) -> np.ndarray:
    out = np.empty(raw.shape, dtype=np.float64)
    for j, t in enumerate(targets):
        spec = BY_NAME[t]
        out[..., j] = np.clip(inverse(spec.transform, raw[..., j]), spec.lo, spec.hi)
    return out


class XGBLearner(Learner):
    """One XGBoost forest per target."""

    name = "xgb"
    path = "ForestPredictor (C kernel)"

    def forest_params(self, target: str, part: Part, j: int) -> tuple[dict[str, Any], int]:
        """The recipe's params and tree count; with ``choose``, chosen once per (fit_on, fold, target) and shared
        by the xgb_mono* variants."""
        if self.s.xgb_source != "choose":
            return self.s.recipe(target)
        mode, k = self.s.context
        key = f"{mode}/{k}/{target}"
        if key not in self.s.chosen:
            max_trees = 40 if self.s.quick else gfit.MAX_TREES
            params, n, rec = gfit.choose_params(part.x, part.y[:, j], part.df["config_id"].to_numpy(),
                                                self.s.trials, SEED + k, max_trees, gfit.PARSIMONY_TOLERANCE,
                                                self.s.floors[(mode, target)])
            self.s.chosen[key] = {"params": params, "n_trees": n, "parsimony": rec}
        c = self.s.chosen[key]
        return dict(c["params"]), int(c["n_trees"])

    def extra(self) -> dict[str, Any]:
        return {}

    def fit(self, part: Part) -> list:
        import xgboost as xgb

        models = []
        for j, t in enumerate(self.s.targets):
            params, n = self.forest_params(t, part, j)
            models.append(xgb.train(_xgb_params(params, **self.extra()), xgb.DMatrix(part.x, label=part.y[:, j]),
                                    num_boost_round=n))
        return models

    def predict(self, model: list, x: np.ndarray) -> np.ndarray:
        return np.column_stack([b.inplace_predict(x) for b in model]).astype(np.float64)

    def size(self, model: list) -> int:
        return sum(len(b.save_raw(raw_format="ubj")) for b in model)

    def info(self, model: list) -> str:
        cfg = [json.loads(b.save_config())["learner"]["gradient_booster"]["tree_train_param"]["max_depth"]
               for b in model]
        return ", ".join(f"{t}: {b.num_boosted_rounds()} trees depth {d}"
                         for t, b, d in zip(self.s.targets, model, cfg))

    def query(self, model: list) -> dict:
        from jahs_gym.predictor import ForestPredictor

        docs = {t: json.loads(bytes(b.save_raw(raw_format="json"))) for t, b in zip(self.s.targets, model)}
        fp = ForestPredictor(docs, {t: BY_NAME[t].transform for t in self.s.targets},
                             {t: (BY_NAME[t].lo, BY_NAME[t].hi) for t in self.s.targets}, N_FEATURES, threads=NTHREAD)
        naive = super().query(model)[self.name]
        return {self.name: (fp.predict_one, fp.predict, f"ForestPredictor ({fp.backend} backend)"),
                f"{self.name} (inplace)": (naive[0], naive[1], "xgboost inplace_predict (naive reference)")}


class XGBMono(XGBLearner):
    name = "xgb_mono"

    def extra(self) -> dict[str, Any]:
        return {"monotone_constraints": _mono()}


class XGBMonoDeep(XGBMono):
    name = "xgb_mono_deep"

    def forest_params(self, target: str, part: Part, j: int) -> tuple[dict[str, Any], int]:
        _, n = super().forest_params(target, part, j)
        return dict(gfit.CANDIDATES[1]), 2 * n  # depth 8, eta 0.1, subsample/colsample 0.8


class XGBCurve(Learner):
    """One multi_output_tree model: config + fidelity (epoch feature fixed at 0) -> targets x epochs outputs."""

    name = "xgb_curve"
    path = "xgboost inplace_predict (vector leaves: not the C predictor)"

    def fit(self, part: Part) -> Any:
        import xgboost as xgb

        e_max, n_t = self.s.max_epochs, len(self.s.targets)
        runs, first = np.unique(part.run, return_index=True)
        pos = np.searchsorted(runs, part.run)
        wide = np.full((len(runs), n_t * e_max), np.nan)
        ep = part.df["epoch"].to_numpy(int) - 1
        for j in range(n_t):
            wide[pos, j * e_max + ep] = part.y[:, j]
        ok = np.isfinite(wide).all(axis=1)  # complete curves only
        xr = part.x[first[ok]].copy()
        xr[:, EPOCH] = 0.0
        params = {"objective": "reg:squarederror", "tree_method": "hist", "multi_strategy": "multi_output_tree",
                  "nthread": NTHREAD, "seed": SEED, "eta": 0.1, "max_depth": 6, "subsample": 0.9,
                  "colsample_bytree": 0.9}
        n = 30 if self.s.quick else 300
        return xgb.train(params, xgb.DMatrix(xr, label=wide[ok]), num_boost_round=n)

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        xr = np.array(x, dtype=np.float32, copy=True)
        ep = np.clip(xr[:, EPOCH].astype(int), 1, self.s.max_epochs) - 1
        xr[:, EPOCH] = 0.0
        out = np.asarray(model.inplace_predict(xr), dtype=np.float64).reshape(len(xr), -1)
        e_max = self.s.max_epochs
        return np.column_stack([out[np.arange(len(xr)), j * e_max + ep] for j in range(len(self.s.targets))])

    def size(self, model: Any) -> int:
        return len(model.save_raw(raw_format="ubj"))

    def info(self, model: Any) -> str:
        return f"{model.num_boosted_rounds()} trees depth 6, {len(self.s.targets) * self.s.max_epochs} outputs"


class HGB(Learner):
    name = "hgb"
    path = "sklearn predict"

    def fit(self, part: Part) -> list:
        from sklearn.ensemble import HistGradientBoostingRegressor

        out = []
        for j in range(len(self.s.targets)):
            m = HistGradientBoostingRegressor(max_iter=40 if self.s.quick else 400, learning_rate=0.1,
                                              max_leaf_nodes=31, early_stopping=False, random_state=SEED)
            out.append(m.fit(part.x, part.y[:, j]))
        return out

    def predict(self, model: list, x: np.ndarray) -> np.ndarray:
        return np.column_stack([m.predict(x) for m in model])

    def size(self, model: list) -> int:
        return len(pickle.dumps(model))

    def info(self, model: list) -> str:
        return f"{model[0].n_iter_} iterations x {len(model)} targets, 31 leaves (size: pickle)"


class LGBM(Learner):
    name = "lgbm"
    path = "lightgbm Booster.predict"

    def fit(self, part: Part) -> list:
        import lightgbm as lgb

        out = []
        for j in range(len(self.s.targets)):
            m = lgb.LGBMRegressor(n_estimators=40 if self.s.quick else 400, learning_rate=0.05, num_leaves=63,
                                  subsample=0.9, subsample_freq=1, colsample_bytree=0.9, n_jobs=NTHREAD,
                                  random_state=SEED, verbose=-1)
            out.append(m.fit(part.x, part.y[:, j]).booster_)
        return out

    def predict(self, model: list, x: np.ndarray) -> np.ndarray:
        return np.column_stack([b.predict(x, num_threads=NTHREAD) for b in model])

    def size(self, model: list) -> int:
        return sum(len(b.model_to_string().encode()) for b in model)

    def info(self, model: list) -> str:
        return f"{model[0].num_trees()} trees x {len(model)} targets, 63 leaves"


def catboost_as_xgboost(path: Path | str) -> dict:
    """A CatBoost model (its JSON export, float features only) as an XGBoost JSON document that
    ``jahs_gym.predictor.ForestPredictor`` reads: every oblivious tree of depth d becomes a full binary tree.

    CatBoost sets bit l of the leaf index when feature > border at level l; XGBoost goes right when
    x >= threshold, so the threshold is the next float32 above the border, and the leaf reached by the
    breadth-first path b_0 .. b_{d-1} (b_0 the most significant) is CatBoost's leaf sum_l b_l << l.
    """
    raw = json.loads(Path(path).read_text())
    flat = {f["feature_index"]: f["flat_feature_index"] for f in raw["features_info"]["float_features"]}
    scale, bias = raw["scale_and_bias"]
    trees = []
    for t in raw["oblivious_trees"]:
        splits = t["splits"]
        if any(sp.get("split_type", "FloatFeature") != "FloatFeature" for sp in splits):
            raise ValueError("only float-feature splits convert")
        d = len(splits)
        leaves = np.asarray(t["leaf_values"], dtype=np.float64) * scale
        n_inner = 2 ** d - 1
        left, right, cond, feat = [], [], [], []
        for i in range(n_inner):  # breadth first: node i at level floor(log2(i + 1))
            sp = splits[(i + 1).bit_length() - 1]
            left.append(2 * i + 1)
            right.append(2 * i + 2)
            cond.append(float(np.nextafter(np.float32(sp["border"]), np.float32(np.inf))))
            feat.append(int(flat[sp["float_feature_index"]]))
        for p in range(2 ** d):  # the leaves in breadth-first order
            idx = int(format(p, f"0{d}b")[::-1], 2) if d else 0
            left.append(-1)
            right.append(-1)
            cond.append(float(leaves[idx]))
            feat.append(0)
        trees.append({"left_children": left, "right_children": right, "split_conditions": cond,
                      "split_indices": feat})
    return {"learner": {"learner_model_param": {"base_score": str(float(bias[0]) if bias else 0.0)},
                        "gradient_booster": {"name": "gbtree", "model": {"trees": trees}}}}


class CatBoost(Learner):
    name = "catboost"
    path = "catboost predict"
    iterations, learning_rate = 500, 0.1

    def fit(self, part: Part) -> list:
        from catboost import CatBoostRegressor

        out = []
        for j in range(len(self.s.targets)):
            m = CatBoostRegressor(iterations=40 if self.s.quick else self.iterations, depth=6,
                                  learning_rate=self.learning_rate, thread_count=NTHREAD, random_seed=SEED,
                                  verbose=False, allow_writing_files=False)
            out.append(m.fit(part.x, part.y[:, j]))
        return out

    def query(self, model: list) -> dict:
        """CatBoost's own predict, and its oblivious trees converted for the C predictor (``catboost_as_xgboost``)."""
        from jahs_gym.predictor import ForestPredictor

        docs = {}
        with tempfile.TemporaryDirectory() as d:
            for t, m in zip(self.s.targets, model):
                p = Path(d) / f"{t}.json"
                m.save_model(str(p), format="json")
                docs[t] = catboost_as_xgboost(p)
        fp = ForestPredictor(docs, {t: BY_NAME[t].transform for t in self.s.targets},
                             {t: (BY_NAME[t].lo, BY_NAME[t].hi) for t in self.s.targets}, N_FEATURES, threads=NTHREAD)
        own = super().query(model)[self.name]
        return {self.name: own,
                f"{self.name} (C)": (fp.predict_one, fp.predict,
                                     f"converted to full depth-6 trees, ForestPredictor ({fp.backend} backend)")}

    def predict(self, model: list, x: np.ndarray) -> np.ndarray:
        return np.column_stack([m.predict(x, thread_count=NTHREAD) for m in model])

    def size(self, model: list) -> int:
        total = 0
        with tempfile.TemporaryDirectory() as d:
            for i, m in enumerate(model):
                p = Path(d) / f"m{i}.cbm"
                m.save_model(str(p))
                total += p.stat().st_size
        return total

    def info(self, model: list) -> str:
        return f"{model[0].tree_count_} oblivious trees depth 6 x {len(model)} targets, lr {self.learning_rate}"


class CatBoostLong(CatBoost):
    name = "catboost_long"
    iterations, learning_rate = 1500, 0.05


class MLP(Learner):
    """5 MLPs trained at once (batched weights), one network for all targets; numpy forward for queries."""

    name = "mlp"
    path = "numpy forward of the 5 networks"
    members, hidden, batch, steps = 5, 128, 512, 1800  # 1,800 steps: 40 epochs of fashion_mnist's 22,700 rows

    def fit(self, part: Part) -> dict[str, np.ndarray]:
        import torch

        torch.set_num_threads(1)
        torch.manual_seed(SEED)
        mu, sd = part.x.mean(0), part.x.std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        ym, ys = part.y.mean(0), part.y.std(0)
        x = torch.tensor((part.x - mu) / sd, dtype=torch.float32)
        y = torch.tensor((part.y - ym) / ys, dtype=torch.float32)
        k, h, f, t = self.members, self.hidden, x.shape[1], y.shape[1]

        def layer(n_in: int, n_out: int) -> list[torch.nn.Parameter]:
            w = torch.empty(k, n_in, n_out)
            for i in range(k):
                torch.nn.init.kaiming_uniform_(w[i].T, a=math.sqrt(5))
            return [torch.nn.Parameter(w), torch.nn.Parameter(torch.zeros(k, 1, n_out))]

        ps = [*layer(f, h), *layer(h, h), *layer(h, t)]
        opt = torch.optim.AdamW(ps, lr=3e-3, weight_decay=1e-4)
        epochs = self.epochs(len(x))
        steps = epochs * math.ceil(len(x) / self.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
        gen = torch.Generator().manual_seed(SEED)
        for _ in range(epochs):
            perm = torch.stack([torch.randperm(len(x), generator=gen) for _ in range(k)])  # a shuffle per member
            for i in range(0, len(x), self.batch):
                idx = perm[:, i:i + self.batch]
                xb, yb = x[idx], y[idx]
                z = torch.relu(torch.baddbmm(ps[1], xb, ps[0]))
                z = torch.relu(torch.baddbmm(ps[3], z, ps[2]))
                loss = ((torch.baddbmm(ps[5], z, ps[4]) - yb) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        w = [p.detach().numpy().astype(np.float32) for p in ps]
        # standardisation folded into the first layer, the output scale into the last: x @ W1' + b1'
        w1 = w[0] / sd[None, :, None].astype(np.float32)
        b1 = w[1] - np.einsum("f,kfh->kh", mu.astype(np.float32), w1)[:, None, :]
        w3 = w[4] * ys[None, None, :].astype(np.float32) / k
        b3 = (w[5] * ys[None, None, :] / k).sum(0).astype(np.float64) + ym
        # the first layers of all members side by side: one (features, members x hidden) matrix
        w1cat = np.ascontiguousarray(w1.transpose(1, 0, 2).reshape(f, k * h))
        return {"w1": w1cat, "b1": np.ascontiguousarray(b1.reshape(k * h)), "w2": w[2], "b2": w[3][:, 0, :],
                "w3": w3, "b3": b3[0], "epochs": np.array([epochs])}

    def predict(self, model: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Mean of the members' outputs, as 2-D matrix products (BLAS GEMMs)."""
        z1 = np.maximum(x.astype(np.float32, copy=False) @ model["w1"] + model["b1"], 0.0)
        h = self.hidden
        out = np.zeros((len(x), model["w3"].shape[2]), dtype=np.float32)
        for i in range(model["w2"].shape[0]):
            z = np.maximum(z1[:, i * h:(i + 1) * h] @ model["w2"][i] + model["b2"][i], 0.0)
            out += z @ model["w3"][i]
        return out.astype(np.float64) + model["b3"]

    def epochs(self, rows: int) -> int:
        """``--mlp-epochs``, else enough epochs for :attr:`steps` optimiser steps (small tables get more epochs)."""
        if self.s.mlp_epochs:
            return self.s.mlp_epochs
        return max(1, math.ceil((20 if self.s.quick else self.steps) / math.ceil(rows / self.batch)))

    def size(self, model: dict[str, np.ndarray]) -> int:
        import torch

        buf = io.BytesIO()
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.items()}, buf)
        return len(buf.getvalue())

    def info(self, model: dict[str, np.ndarray]) -> str:
        return f"{self.members} x (2 x {self.hidden}), {int(model['epochs'][0])} epochs, batch {self.batch}"


LEARNERS: dict[str, type[Learner]] = {c.name: c for c in (XGBLearner, XGBMono, XGBMonoDeep, XGBCurve, HGB, LGBM,
                                                            CatBoost, CatBoostLong, MLP)}
NEEDS = {"hgb": ("sklearn", "scikit-learn"), "lgbm": ("lightgbm", "lightgbm"), "catboost": ("catboost", "catboost"),
         "catboost_long": ("catboost", "catboost"), "mlp": ("torch", "torch")}


def available(name: str) -> str | None:
    """None when the learner's package imports; else why not."""
    if name not in NEEDS:
        return None
    mod, dist = NEEDS[name]
    try:
        __import__(mod)
    except Exception as e:  # noqa: BLE001  (an optional dependency: any import failure skips the learner)
        return f"{mod} does not import ({type(e).__name__}: {e}); `pip install {dist}` brings it"
    return None


# ----------------------------------------------------------------------------------------------- timing
def limit_blas() -> str:
    """One BLAS thread for numpy (the MLP's products): OpenBLAS spins like OpenMP, and on this loaded machine a
    1,024 x 57 @ 57 x 640 product took 90 ms on 2 threads, 4 ms on 1. Needs threadpoolctl (scikit-learn's)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "numpy BLAS threads left as they are (no threadpoolctl)"
    threadpool_limits(1, user_api="blas")
    return "numpy BLAS limited to 1 thread"


def per_call(fn: Callable[[], object], min_time: float = 0.15) -> float:
    """Seconds per call: enough calls to fill ``min_time``."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_time:
            return dt / n
        n = max(n * 2, int(n * min_time / max(dt, 1e-9)))


def time_paths(paths: dict[str, tuple[Callable, Callable, str]], rows: np.ndarray, rounds: int,
               progress: bool) -> dict[str, dict[str, float]]:
    """Median seconds per one-row query (cycling through 512 rows) and per batch of ``rows``, rounds alternating
    over every path."""
    singles = [np.ascontiguousarray(rows[i]) for i in range(min(512, len(rows)))]
    one: dict[str, list[float]] = {k: [] for k in paths}
    many: dict[str, list[float]] = {k: [] for k in paths}
    it = _tqdm(range(rounds), "timing rounds", progress)
    for _ in it:
        for k, (f_one, f_batch, _) in paths.items():
            cyc = itertools.cycle(singles)
            one[k].append(per_call(lambda f=f_one, c=cyc: f(next(c))))
            many[k].append(per_call(lambda f=f_batch: f(rows)))
    return {k: {"one_row_us": float(np.median(one[k])) * 1e6, "batch_ms": float(np.median(many[k])) * 1e3}
            for k in paths}


def _tqdm(it: Any, desc: str, on: bool, total: int | None = None) -> Any:
    if not on:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, desc=desc, total=total, file=sys.stderr)


# -------------------------------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = TARGETS
    table = Path(args.table or DEFAULT_TABLES.get(args.task, ""))
    if not table.is_file():
        raise SystemExit(f"table {table} does not exist; give --table PATH (a merged learning-curve table)")
    df = pd.read_parquet(table)
    if "task" in df.columns and set(df["task"].unique()) != {args.task}:
        raise SystemExit(f"table {table} holds task(s) {sorted(df['task'].unique())}, not {args.task!r}")
    df = df[np.isfinite(df[list(targets)].to_numpy(float)).all(axis=1)].reset_index(drop=True)
    manifest_path = ROOT / "jahs_gym" / "data" / args.task / "manifest.json"
    manifest = read_manifest(manifest_path.parent) if manifest_path.is_file() else None
    folds = 2 if args.quick and args.folds is None else (args.folds or 5)
    mlp_epochs = args.mlp_epochs
    s = Settings(targets, int(df["epoch"].max()), args.quick, args.xgb_params, manifest,
                 int(manifest.fit.get("trials", 4)) if manifest is not None else 4, mlp_epochs)

    fold_idx = gfit.grouped_folds(df["config_id"].to_numpy(), folds, SEED)
    fold_of = {}
    for k, idx in enumerate(fold_idx):
        fold_of.update(dict.fromkeys(df["config_id"].to_numpy()[idx], k))
    means, means_source = seed_mean_frame(df, list(targets))
    parts = {"single": make_part(df, targets, fold_of, ["config_id", "fidelity_id", "seed"]),
             "mean": make_part(means, targets, fold_of, ["config_id", "fidelity_id"])}
    for mode, part in parts.items():  # fit_bundle's parsimony floor: 1% of the fitted labels' std
        for j, t in enumerate(targets):
            s.floors[(mode, t)] = gfit.parsimony_floor(part.y[:, j])

    names = [n.strip() for n in args.learners.split(",") if n.strip()]
    unknown = [n for n in names if n not in LEARNERS]
    if unknown:
        raise SystemExit(f"unknown learner(s) {unknown}; known: {list(LEARNERS)}")
    skipped = {n: why for n in names if (why := available(n))}
    learners = [LEARNERS[n](s) for n in names if n not in skipped]
    fit_on = [m for m in args.fit_on.split(",") if m]
    if set(fit_on) - set(FIT_ON):
        raise SystemExit(f"--fit-on {args.fit_on!r}: allowed {list(FIT_ON)}")

    ceiling = {}
    for t in targets:
        tr = BY_NAME[t].transform
        c1 = noise_ceiling(df, t, tr)
        c2 = noise_ceiling(df, t, tr, seeds=2)
        try:  # generation.labels' version scores the table's own seed-mean labels (1 or 2 seeds each)
            ct = noise_ceiling(df, t, tr, seeds="table")
        except (TypeError, ValueError):
            ct = {}
        ceiling[t] = {"sigma_fitted": c1.get("sigma"), "pairs": c1.get("pairs"),
                      "single_run_labels": {"r2": c1.get("r2"), "kendall_tau": c1.get("kendall_tau")},
                      "seed_mean_labels": {"r2": ct.get("r2"), "kendall_tau": ct.get("kendall_tau")},
                      "two_seed_labels": {"r2": c2.get("r2"), "kendall_tau": c2.get("kendall_tau")}}

    results: dict[str, Any] = {}
    timing_models: dict[str, Any] = {}
    bar = _tqdm(None, "fits", not args.no_progress, total=len(fit_on) * len(learners) * folds)
    for mode in fit_on:
        train_part = parts[mode]
        for lrn in learners:
            pred = {k: np.full((len(p.x), len(targets)), np.nan) for k, p in parts.items()}
            t0 = time.perf_counter()
            for k in range(folds):
                if bar is not None and hasattr(bar, "set_postfix_str"):
                    bar.set_postfix_str(f"{lrn.name} on {mode} rows, fold {k + 1}/{folds}")
                s.context = (mode, k)
                model = lrn.fit(train_part.take(np.flatnonzero(train_part.fold != k)))
                for key, p in parts.items():
                    te = np.flatnonzero(p.fold == k)
                    pred[key][te] = lrn.predict(model, p.x[te])
                if k == 0 and (mode == "single" or lrn.name not in timing_models):
                    timing_models[lrn.name] = model
                if bar is not None and hasattr(bar, "update"):
                    bar.update(1)
            seconds = time.perf_counter() - t0
            res: dict[str, Any] = {"fit_seconds": round(seconds, 1)}
            for j, t in enumerate(targets):
                spec = BY_NAME[t]
                res[t] = {}
                for key, label in (("single", "single_run_labels"), ("mean", "seed_mean_labels")):
                    p = parts[key]
                    y = p.df[t].to_numpy(float)
                    yhat = np.clip(inverse(spec.transform, pred[key][:, j]), spec.lo, spec.hi)
                    ok = np.isfinite(yhat)
                    q = quality(y[ok], yhat[ok])
                    res[t][label] = {k2: (round(v, 4) if isinstance(v, float) else v) for k2, v in q.items()}
            results.setdefault(lrn.name, {})[mode] = res
    if bar is not None and hasattr(bar, "close"):
        bar.close()

    # query time and size: the fold-0 models, side by side
    rng = np.random.default_rng(SEED)
    rows = np.ascontiguousarray(parts["single"].x[rng.choice(len(parts["single"].x), args.batch, replace=False)])
    paths: dict[str, tuple[Callable, Callable, str]] = {}
    sizes, infos, owner = {}, {}, {}
    agree = {}
    for lrn in learners:
        model = timing_models[lrn.name]
        sizes[lrn.name] = lrn.size(model)
        infos[lrn.name] = lrn.info(model)
        q = lrn.query(model)
        ref = _to_units(targets, lrn.predict(model, rows))
        for k, v in q.items():
            got = np.asarray(v[1](rows))
            one = np.stack([np.asarray(v[0](rows[i])) for i in range(16)])
            agree[k] = float(max(np.max(np.abs(got - ref)), np.max(np.abs(one - ref[:16]))))
            owner[k] = lrn.name
        paths.update(q)
    timing = time_paths(paths, rows, args.rounds, not args.no_progress) if paths else {}
    for k in timing:
        timing[k].update({"path": paths[k][2], "learner": owner[k], "max_abs_diff_percent": agree[k]})

    return {"task": args.task, "table": str(table), "rows": int(len(df)), "configs": int(df["config_id"].nunique()),
            "seed_mean_rows": int(len(means)), "seed_means_source": means_source, "folds": folds, "seed": SEED,
            "quick": bool(args.quick), "targets": list(targets), "fit_on": fit_on,
            "xgb_params": (f"manifest {manifest_path.relative_to(ROOT)} (params, n_trees per target)"
                           if args.xgb_params == "manifest" else
                           f"generation.fit.choose_params per fold (trials {s.trials}, tolerance "
                           f"{gfit.PARSIMONY_TOLERANCE})"),
            "recipe": {t: dict(zip(("params", "n_trees"), s.recipe(t))) for t in targets}, "chosen": s.chosen,
            "mlp_epochs": mlp_epochs, "skipped": skipped, "noise_ceiling": ceiling, "quality": results,
            "timing": timing, "size_bytes": sizes, "model": infos, "goal": {"valid_acc seed-mean labels": GOAL},
            "machine": {"cpus": os.cpu_count(), "load_avg_at_end": list(os.getloadavg())}}


def report(r: dict[str, Any]) -> str:
    """The results as Markdown."""
    out = [f"## Surrogate learners on {r['task']} ({r['rows']} rows, {r['configs']} configs, {r['seed_mean_rows']} "
           f"seed-mean rows; grouped {r['folds']}-fold by config_id, seed {r['seed']}"
           f"{'; QUICK run' if r['quick'] else ''})", "",
           f"XGBoost recipe: {r['xgb_params']}"
           + ("" if r["chosen"] else ": " + "; ".join(f"{t} {v['n_trees']} trees, {v['params']}"
                                                     for t, v in r["recipe"].items())),
           f"Seed-mean labels: {r['seed_means_source']}.",
           f"Threads: {NTHREAD} for XGBoost, LightGBM, CatBoost and scikit-learn (OMP_WAIT_POLICY="
           f"{os.environ.get('OMP_WAIT_POLICY')}), 1 for torch; {r.get('blas', '')}; load average at the end "
           f"{', '.join(f'{v:.1f}' for v in r['machine']['load_avg_at_end'])} on {r['machine']['cpus']} CPUs.", ""]
    if r["chosen"]:
        by: dict[str, list[str]] = {}
        for key, c in r["chosen"].items():
            mode, _, t = key.split("/")
            by.setdefault(f"{t} fitted on {mode} rows", []).append(f"{c['n_trees']}x d{c['params']['max_depth']}")
        out += ["choose_params per fold (trees x depth): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in by.items()),
                ""]
    for name, why in r["skipped"].items():
        out.append(f"- skipped {name}: {why}")
    out += ["", "Noise ceiling (what a perfect seed-mean predictor scores; noise_ceiling):", "",
            "| target | seed sigma (logit) | R2 vs single-run | tau vs single-run | R2 vs seed-mean | "
            "tau vs seed-mean | R2 vs 2-seed mean | tau vs 2-seed mean |",
            "|---|---|---|---|---|---|---|---|"]
    for t, c in r["noise_ceiling"].items():
        def f(v: Any) -> str:
            return "-" if v is None else f"{v:.4f}"
        out.append(f"| {t} | {f(c['sigma_fitted'])} | {f(c['single_run_labels']['r2'])} | "
                   f"{f(c['single_run_labels']['kendall_tau'])} | {f(c['seed_mean_labels']['r2'])} | "
                   f"{f(c['seed_mean_labels']['kendall_tau'])} | {f(c['two_seed_labels']['r2'])} | "
                   f"{f(c['two_seed_labels']['kendall_tau'])} |")
    out += ["", "Held-out quality in percent (R2, Kendall tau, MAE); goal: valid_acc vs seed-mean labels "
            f"tau >= {GOAL['kendall_tau']}, R2 >= {GOAL['r2']}", "",
            "| learner | fitted on | target | R2 single-run | tau single-run | R2 seed-mean | tau seed-mean | "
            "MAE seed-mean | goal | fit s (all folds) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, modes in r["quality"].items():
        for mode, res in modes.items():
            for t in r["targets"]:
                a, b = res[t]["single_run_labels"], res[t]["seed_mean_labels"]
                goal = ("yes" if b["r2"] >= GOAL["r2"] and b["kendall_tau"] >= GOAL["kendall_tau"] else "no") \
                    if t == "valid_acc" else ""
                out.append(f"| {name} | {mode} | {t} | {a['r2']:.4f} | {a['kendall_tau']:.4f} | {b['r2']:.4f} | "
                           f"{b['kendall_tau']:.4f} | {b['mae']:.3f} | {goal} | {res['fit_seconds']} |")
    ref = r["timing"].get("xgb") or next(iter(r["timing"].values()), None)
    out += ["", f"Query time (all {len(r['targets'])} targets; medians of alternating rounds; fold-0 model) and "
            "saved size; ratios against xgb through the C predictor", "",
            "| learner | path | one row (us) | 1,024 rows (ms) | one row / xgb | batch / xgb | saved bytes | model | "
            "max abs diff vs own predict (pp) |", "|---|---|---|---|---|---|---|---|---|"]
    for k, v in r["timing"].items():
        ln = v["learner"]
        out.append(f"| {k} | {v['path']} | {v['one_row_us']:.1f} | {v['batch_ms']:.3f} | "
                   f"{v['one_row_us'] / ref['one_row_us']:.1f}x | {v['batch_ms'] / ref['batch_ms']:.1f}x | "
                   f"{r['size_bytes'][ln]:,} | {r['model'][ln]} | {v['max_abs_diff_percent']:.1e} |")
    return "\n".join(out)


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", choices=sorted(DEFAULT_TABLES),
                   help="the task: picks the default table and the shipped manifest the XGBoost recipe comes from")
    p.add_argument("--table", default=argparse.SUPPRESS,
                   help="merged learning-curve table (parquet); default /tmp/fm_table.parquet for fashion_mnist, "
                        "/tmp/mn_table.parquet for mnist")
    p.add_argument("--learners", default=",".join(LEARNERS),
                   help=f"comma list of learners to compare, of: {', '.join(LEARNERS)}")
    p.add_argument("--fit-on", default=",".join(FIT_ON),
                   help="comma list of the label sets each learner is fitted on: 'single' (every single-run row) "
                        "and/or 'mean' (seed-mean rows); both are always used for scoring")
    p.add_argument("--xgb-params", default="choose", choices=("choose", "manifest"),
                   help="the XGBoost recipe's params and tree count: generation.fit.choose_params in every outer "
                        "training part (the shipped bundle's trials, PARSIMONY_TOLERANCE, fit_bundle's RMSE floor; "
                        "shared by the xgb_mono* variants), or as recorded in the shipped bundle's manifest.json "
                        "(faster; chosen there on the table the bundle was fitted on)")
    p.add_argument("--folds", type=int, default=argparse.SUPPRESS, help="grouped folds (default 5; 2 with --quick)")
    p.add_argument("--mlp-epochs", type=int, default=argparse.SUPPRESS,
                   help="training epochs of the MLP ensemble (default: as many as 1,800 optimiser steps of batch "
                        "512 take, 40 on fashion_mnist; 20 steps with --quick)")
    p.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (medians are reported)")
    p.add_argument("--batch", type=int, default=1024, help="rows in the batch timing")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 folds, 40 trees/iterations per booster, 20 MLP steps")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = p.parse_args(argv)
    for k in ("table", "folds", "mlp_epochs"):
        setattr(args, k, getattr(args, k, None))
    t0 = time.time()
    blas = limit_blas()
    r = run(args)
    r["blas"] = blas
    r["wall_seconds"] = round(time.time() - t0, 1)
    print(report(r))
    print(f"\nwall time {r['wall_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=float))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
