"""The query API that JAHS-Bench-201 users know.

>>> import jahs_gym
>>> bench = jahs_gym.Benchmark("fashion_mnist")          # doctest: +SKIP
>>> config = bench.sample_config(seed=0)                  # doctest: +SKIP
>>> bench(config, nepochs=5)                              # doctest: +SKIP
{5: {'valid_acc': ..., 'runtime': ..., ...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from jahs_gym.bundle import Bundle, load_bundle
from jahs_gym.space import (
    ACTIVATIONS,
    CONFIG_KEYS,
    LR_RANGE,
    N_VALUES,
    OP_KEYS,
    OPS,
    OPTIMIZERS,
    RESOLUTIONS,
    W_VALUES,
    WD_RANGE,
    Config,
    Fidelity,
    SpaceError,
    encode_arrays,
    encode_frame,
    fidelity_id,
    sample_config,
    split_dict,
)

KINDS = ("surrogate", "table")
TIMINGS = ("measured", "corrected")


class Benchmark:
    """Query a task: ``kind="surrogate"`` (XGBoost surrogates) or ``kind="table"`` (the trained rows).

    ``metrics`` restricts the surrogate to those metrics (only their models are loaded).

    ``timings``: the surrogate predicts the timings (cpu_runtime, runtime, latency) at the training machine's
    median speed, "corrected" (the bundle's ``speed_correction`` took the machine's drift over hours out of its
    labels), or "measured" for a bundle fitted with ``--speed-window 0``. The table holds them as "measured" (its
    default) or, with ``timings="corrected"``, divided by each task's speed factor, as the surrogate was fitted
    on them.
    """

    def __init__(self, task: str = "fashion_mnist", kind: str = "surrogate", metrics: Sequence[str] | None = None,
                 backend: str | None = None, timings: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; allowed: {list(KINDS)}")
        if timings is not None and timings not in TIMINGS:
            raise ValueError(f"timings={timings!r} is not allowed; allowed: {list(TIMINGS)}")
        self.bundle: Bundle = load_bundle(task)
        fitted = "corrected" if self.bundle.speed_corrected else "measured"  # what the surrogate predicts
        timings = timings or ("measured" if kind == "table" else fitted)
        if kind == "surrogate" and timings != fitted:
            if fitted == "corrected":
                raise ValueError("timings='measured' needs kind='table': the surrogate predicts the timings at the "
                                 "training machine's median speed (timings='corrected'); only the table holds them "
                                 "as measured")
            raise ValueError(f"timings='corrected': the {task} surrogate was fitted without the speed correction "
                             "(`python -m generation fit --speed-window 0`), so it predicts the timings as measured; "
                             "use timings='measured', or refit it with --speed-window > 0")
        self.task, self.kind, self.timings = task, kind, timings
        self.max_epochs = self.bundle.max_epochs
        self.metrics: tuple[str, ...] = self.bundle._check_metrics(metrics)
        self._predictor = None
        self._backend = backend
        self._table: pd.DataFrame | None = None
        self._index: dict[tuple, np.ndarray] | None = None
        if kind == "table":
            path = self.bundle.table_path()
            if path is None:
                raise FileNotFoundError(f"the {task} bundle ships no table; use kind='surrogate' or refit it with "
                                        "`python -m generation fit TABLE -o BUNDLE --ship-table`")
            self._table = pd.read_parquet(path)
            if timings == "corrected":
                self._correct_timings()
            keys = self._table[["config_id", "N", "W", "Resolution"]].itertuples(index=False, name=None)
            idx: dict[tuple, list[int]] = {}
            for i, k in enumerate(keys):
                idx.setdefault(k, []).append(i)
            self._index = {k: np.asarray(v) for k, v in idx.items()}

    def _correct_timings(self) -> None:
        """Divide the table's timings by the bundle's per-task speed factors (fit_bundle wrote them)."""
        assert self._table is not None
        path = self.bundle.speed_factors_path()
        if path is None:
            raise FileNotFoundError(f"the {self.task} bundle ships no speed factors, so its table has measured "
                                    "timings only; use timings='measured', or refit it with `python -m generation fit "
                                    "TABLE -o BUNDLE --ship-table` (with the speed correction on)")
        sf = pd.read_parquet(path).set_index("task_id")
        for m in sf.columns:
            if m in self._table.columns:
                self._table[m] = self._table[m] / self._table["task_id"].map(sf[m]).fillna(1.0)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_predictor"] = None  # rebuilt lazily from the (pickled, re-verified) bundle
        return state

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            self._predictor = self.bundle.predictor(self.metrics, self._backend)
        return self._predictor

    def sample_config(self, seed: int | np.random.Generator | None = None) -> dict[str, Any]:
        """A random configuration as a JAHS-Bench-201 dict (config keys; add N, W, Resolution to change fidelity)."""
        return sample_config(seed).as_dict()

    def __call__(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                 full_trajectory: bool = False, **fidelity: Any) -> dict[int, dict[str, float]]:
        """``{epoch: {metric: value}}`` for ``config`` trained ``nepochs`` epochs (default: the max)."""
        cfg, fid = self._parse(config, nepochs, fidelity)
        epochs = list(range(1, fid.epoch + 1)) if full_trajectory else [fid.epoch]
        if self.kind == "table":
            return self._from_table(cfg, fid, epochs)
        x = self._encode_curve(cfg, fid, epochs)
        y = self.predictor.predict(x)
        return {e: dict(zip(self.metrics, map(float, row))) for e, row in zip(epochs, y)}

    def random_sample(self, random_state: int | np.random.Generator | None = None, nepochs: int | None = None,
                      full_trajectory: bool = False) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
        """``(config, results)`` as JAHS-Bench-201's ``random_sample``: a random config and fidelity.

        ``config`` holds the config keys plus N, W and Resolution; ``results`` is what ``self(config, nepochs,
        full_trajectory)`` answers. kind="surrogate" samples the whole space; kind="table" samples a trained
        (config, fidelity) of the table (``nepochs`` defaults to the last epoch it trained).
        """
        rng = np.random.default_rng(random_state)
        if self.kind == "table":
            assert self._table is not None and self._index is not None
            keys = list(self._index)
            rows = self._table.iloc[self._index[keys[int(rng.integers(len(keys)))]]]
            row = rows.iloc[0]
            config = {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in
                      (*CONFIG_KEYS, "N", "W", "Resolution")}
            if nepochs is None:  # a diverged run stops early: its last trained epoch
                nepochs = int(rows.loc[rows["seed"] == rows["seed"].min(), "epoch"].max())
        else:
            config = {**sample_config(rng).as_dict(), "N": N_VALUES[int(rng.integers(len(N_VALUES)))],
                      "W": W_VALUES[int(rng.integers(len(W_VALUES)))],
                      "Resolution": RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]}
        return config, self(config, nepochs=nepochs, full_trajectory=full_trajectory)

    def learning_curve(self, config: Mapping[str, Any] | Config, **fidelity: Any) -> pd.DataFrame:
        """The whole learning curve (epochs 1..max) as a DataFrame, in one batched call."""
        out = self(config, nepochs=fidelity.pop("nepochs", self.max_epochs), full_trajectory=True, **fidelity)
        return pd.DataFrame.from_dict(out, orient="index").rename_axis("epoch")

    def query(self, df: pd.DataFrame) -> pd.DataFrame:
        """Batch: rows with the config keys plus N, W, Resolution, epoch -> the metrics (same index)."""
        need = [*CONFIG_KEYS, "N", "W", "Resolution", "epoch"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise KeyError(f"query: missing column(s) {missing}; needed: {need}")
        self._validate_frame(df)
        if self.kind == "table":
            parts = [pd.DataFrame([self(r._asdict() | {}, nepochs=int(r.epoch))[int(r.epoch)]])
                     for r in df[need].itertuples(index=False)]
            return pd.concat(parts, ignore_index=True).set_index(df.index)
        y = self.predictor.predict(encode_frame(df))
        return pd.DataFrame(y, columns=list(self.metrics), index=df.index)

    # ------------------------------------------------------------------------------- helpers
    def _parse(self, config: Mapping[str, Any] | Config, nepochs: int | None,
               fidelity: Mapping[str, Any]) -> tuple[Config, Fidelity]:
        epochs = self.max_epochs if nepochs is None else nepochs
        if isinstance(config, Config):
            cfg = config
            fid = Fidelity.from_dict({**fidelity, "epoch": epochs})
        else:
            cfg, fid = split_dict({**config, **fidelity, "epoch": epochs})
        fid.check_epoch(self.max_epochs)
        return cfg, fid

    def _encode_curve(self, cfg: Config, fid: Fidelity, epochs: list[int]) -> np.ndarray:
        n = len(epochs)
        ops = np.tile([getattr(cfg, k) for k in OP_KEYS], (n, 1))
        return encode_arrays(ops, np.full(n, ACTIVATIONS.index(cfg.Activation)), np.full(n, float(cfg.TrivialAugment)),
                             np.full(n, cfg.LearningRate), np.full(n, cfg.WeightDecay), np.full(n, fid.N),
                             np.full(n, fid.W), np.full(n, fid.Resolution), np.asarray(epochs))

    def _validate_frame(self, df: pd.DataFrame) -> None:
        """Vectorised checks of every row; the first bad row gets the scalar check's clear error."""
        cols = [*CONFIG_KEYS, "N", "W", "Resolution", "epoch"]
        ok = np.ones(len(df), dtype=bool)
        for k in OP_KEYS:
            v = df[k]
            ok &= v.isin(range(len(OPS))).to_numpy() | v.isin(OPS).to_numpy()
        ok &= df["Activation"].isin(ACTIVATIONS).to_numpy() & df["Optimizer"].isin(OPTIMIZERS).to_numpy()
        ok &= np.array([isinstance(t, (bool, np.bool_)) for t in df["TrivialAugment"]], dtype=bool)
        for k, (lo, hi) in (("LearningRate", LR_RANGE), ("WeightDecay", WD_RANGE)):
            v = pd.to_numeric(df[k], errors="coerce").to_numpy(dtype=float)
            ok &= (v >= lo) & (v <= hi)
        ok &= df["N"].isin(N_VALUES).to_numpy() & df["W"].isin(W_VALUES).to_numpy()
        ok &= df["Resolution"].isin(RESOLUTIONS).to_numpy()
        e = pd.to_numeric(df["epoch"], errors="coerce").to_numpy(dtype=float)
        ok &= (e >= 1) & (e <= self.max_epochs) & (np.mod(e, 1) == 0)
        if ok.all():
            return
        i = int(np.flatnonzero(~ok)[0])
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in df[cols].iloc[i].items()}
        try:
            _, fid = split_dict(row)
            fid.check_epoch(self.max_epochs)
        except SpaceError as err:
            raise SpaceError(f"query row {i}: {err}") from None
        raise SpaceError(f"query row {i}: {row} is not a valid JAHS-Bench-201 row")

    def _from_table(self, cfg: Config, fid: Fidelity, epochs: list[int]) -> dict[int, dict[str, float]]:
        assert self._table is not None and self._index is not None
        key = (cfg.config_id, fid.N, fid.W, fid.Resolution)
        rows = self._index.get(key)
        if rows is None:
            have = sorted({fidelity_id(*k[1:]) for k in self._index if k[0] == cfg.config_id})
            if have:
                raise KeyError(f"config {cfg.config_id} was not trained at {fid.fidelity_id}; "
                               f"it was trained at: {have}")
            raise KeyError(f"config {cfg.config_id} is not in the {self.task} table ({len(self._index)} trained "
                           "(config, fidelity) pairs); use kind='surrogate' or a config from bench.table_configs()")
        sub = self._table.iloc[rows]
        sub = sub[sub["seed"] == sub["seed"].min()].set_index("epoch")
        out = {}
        for e in epochs:
            if e not in sub.index:
                raise KeyError(f"config {cfg.config_id} at {fid.fidelity_id} has epochs "
                               f"{int(sub.index.min())}..{int(sub.index.max())}; epoch {e} was not trained "
                               f"(status {sub['status'].iloc[-1]!r})")
            out[e] = {m: float(sub.at[e, m]) for m in self.metrics}
        return out

    def table_configs(self) -> pd.DataFrame:
        """(kind='table') The trained configs and fidelities, one row each."""
        if self._table is None:
            raise ValueError("table_configs() needs kind='table'")
        return self._table.drop_duplicates(["config_id", "N", "W", "Resolution"])[
            ["config_id", *CONFIG_KEYS, "N", "W", "Resolution"]].reset_index(drop=True)
