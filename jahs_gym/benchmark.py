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
    sample_config,
    split_dict,
)
from jahs_gym.table import TIMINGS, RunTable, run_table

KINDS = ("surrogate", "table")


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
        self._runs: RunTable | None = run_table(self.bundle, self.metrics, timings) if kind == "table" else None

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
        if self._runs is not None:
            run = int(rng.integers(len(self._runs)))
            config = self._runs.config(run)
            if nepochs is None:  # a diverged run stops early: the last epoch its lowest seed trained
                nepochs = int(np.isfinite(self._runs.curve(run)[:, 0]).sum())
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
        """The run's lowest seed's measured metrics at ``epochs``."""
        assert self._runs is not None
        run = self._runs.find(cfg.config_id, fid.N, fid.W, fid.Resolution)
        curve = self._runs.curve(run)
        out = {}
        for e in epochs:
            if not np.isfinite(curve[e - 1, 0]):
                last = int(np.isfinite(curve[:, 0]).sum())
                raise KeyError(f"config {cfg.config_id} at {fid.fidelity_id} trained epochs 1..{last} (it diverged "
                               f"there); epoch {e} was not trained")
            out[e] = dict(zip(self.metrics, map(float, curve[e - 1])))
        return out

    def table_configs(self) -> pd.DataFrame:
        """(kind='table') The trained configs and fidelities, one row each (a run of the table)."""
        if self._runs is None:
            raise ValueError("table_configs() needs kind='table'")
        return pd.concat([pd.DataFrame({"config_id": self._runs.config_ids}), self._runs.configs,
                          self._runs.fidelities], axis=1)
