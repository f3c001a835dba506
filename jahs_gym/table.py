"""The trained runs of a bundle's table, as arrays: one lookup for ``Benchmark(kind="table")`` and JAHS-v0's
``backend="table"``.

A run is a (config, N, W, Resolution) the generation pipeline trained, with one or more seeds. ``RunTable``
holds every run's learning curves as an array ``curves[run, seed slot, epoch - 1, metric]`` (NaN past a
diverged run's last epoch, and in the seed slots a run does not have), its seeds' mean in each metric's fitted
space (``mean``), and the 13 decoded action columns of every run (JAHS-v0's ``COMPONENTS`` without the
epoch). Runs are numbered in the order the table first lists them.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from jahs_gym import transforms as tf
from jahs_gym.bundle import Bundle
from jahs_gym.space import ACTIVATIONS, CONFIG_KEYS, OP_KEYS, fidelity_id

TIMINGS = ("measured", "corrected")
RUN_KEY = ("config_id", "N", "W", "Resolution")


class RunTable:
    """The runs of ``bundle``'s shipped table with ``metrics`` (in that order), timings as ``timings``.

    ``timings="corrected"`` divides cpu_runtime, runtime and latency by each task's speed factor (the
    machine's drift over hours, ``generation.fit``), so they are at the training machine's median speed, as
    the surrogate predicts them; ``"measured"`` keeps them as measured.

    Args:
        bundle: A bundle that ships its table (``fit --ship-table``).
        metrics: The metric columns to hold, in this order.
        timings: ``"measured"`` or ``"corrected"``.

    Raises:
        ValueError: An unknown ``timings``, a metric the table lacks, or epochs outside the protocol's.
        FileNotFoundError: The bundle ships no table (or, for ``"corrected"``, no speed factors).
    """

    def __init__(self, bundle: Bundle, metrics: Sequence[str], timings: str = "measured") -> None:
        if timings not in TIMINGS:
            raise ValueError(f"timings={timings!r} is not allowed; allowed: {list(TIMINGS)}")
        path = bundle.table_path()
        if path is None:
            raise FileNotFoundError(f"the {bundle.task} bundle ships no table; refit it with "
                                    "`python -m generation fit TABLE -o BUNDLE --ship-table`")
        df = pd.read_parquet(io.BytesIO(bundle.read_file(bundle.manifest.table.file)))  # hashed as read
        missing = [m for m in metrics if m not in df.columns]
        if missing:
            raise ValueError(f"the {bundle.task} table lacks metric column(s) {missing}")
        if timings == "corrected":
            df = _corrected(bundle, df)
        self.task, self.metrics, self.timings = bundle.task, tuple(metrics), timings
        self.max_epochs = bundle.max_epochs
        run, keys = pd.factorize(pd.MultiIndex.from_frame(df[list(RUN_KEY)]), sort=False)
        seeds = df["seed"].to_numpy()
        n_runs = len(keys)
        # seed slot: the rank of a row's seed among its run's seeds (lowest seed first)
        slot = pd.DataFrame({"run": run, "seed": seeds}).groupby("run")["seed"].rank(method="dense")
        slot = slot.to_numpy().astype(np.int64) - 1
        epoch = df["epoch"].to_numpy().astype(np.int64)
        if (epoch < 1).any() or (epoch > self.max_epochs).any():
            raise ValueError(f"the {bundle.task} table has epochs outside 1..{self.max_epochs}")
        self.n_seeds = (pd.Series(slot).groupby(run).max().to_numpy() + 1).astype(np.int64)
        self.curves = np.full((n_runs, int(self.n_seeds.max()), self.max_epochs, len(metrics)), np.nan)
        self.curves[run, slot, epoch - 1] = df[list(metrics)].to_numpy(dtype=float)
        self.seeds = np.full((n_runs, self.curves.shape[1]), -1, dtype=np.int64)
        self.seeds[run, slot] = seeds
        fitted = bundle.transforms()
        self.transforms = tuple(fitted[m] for m in metrics)
        self.fitted = np.stack([tf.forward(t, self.curves[..., j]) for j, t in enumerate(self.transforms)], axis=-1)
        with np.errstate(invalid="ignore"):  # all-NaN slices (epochs no seed trained) stay NaN
            mean_fit = np.nanmean(self.fitted, axis=1) if self.curves.shape[1] > 1 else self.fitted[:, 0]
        self.mean_fitted = mean_fit
        mean = np.stack([tf.inverse(t, mean_fit[..., j]) for j, t in enumerate(self.transforms)], axis=-1)
        # a cell one seed measured is that measurement, bit for bit (inverse(forward(x)) may be an ulp off)
        one = np.isfinite(self.curves).sum(axis=1) == 1
        self.mean = np.where(one, np.nansum(self.curves, axis=1), mean)
        # the epochs every seed of a run trained (a diverged seed stops early): 1..last
        trained = np.isfinite(self.curves[..., 0])
        last = np.where(trained, np.arange(1, self.max_epochs + 1), 0).max(axis=2)
        self.last_epoch = np.where(self.seeds >= 0, last, self.max_epochs).min(axis=1)
        first = np.full(n_runs, -1)
        first[run[::-1]] = np.arange(len(run))[::-1]
        rows = df.iloc[first]
        self.configs = rows[list(CONFIG_KEYS)].reset_index(drop=True)
        self.fidelities = rows[["N", "W", "Resolution"]].reset_index(drop=True)
        self.config_ids = rows["config_id"].to_numpy()
        self.columns = [*(rows[k].to_numpy(dtype=np.int64) for k in OP_KEYS),
                        np.array([ACTIVATIONS.index(a) for a in rows["Activation"]], dtype=np.int64),
                        rows["TrivialAugment"].to_numpy(dtype=bool), rows["LearningRate"].to_numpy(dtype=float),
                        rows["WeightDecay"].to_numpy(dtype=float), rows["N"].to_numpy(dtype=np.int64),
                        rows["W"].to_numpy(dtype=np.int64), rows["Resolution"].to_numpy(dtype=float)]
        self._index = {k: i for i, k in enumerate(keys)}
        for a in (self.curves, self.seeds, self.fitted, self.mean_fitted, self.mean, self.last_epoch, self.n_seeds,
                  self.config_ids, *self.columns):
            a.flags.writeable = False  # shared by every env and Benchmark of the process: read-only

    def __len__(self) -> int:
        return len(self._index)

    def find(self, config_id: str, n: int, w: int, resolution: float) -> int:
        """The run index of a (config, fidelity).

        Args:
            config_id: :attr:`jahs_gym.space.Config.config_id` of the config.
            n: N of the fidelity.
            w: W of the fidelity.
            resolution: Resolution of the fidelity.

        Returns:
            The run's index (the first axis of :attr:`curves`).

        Raises:
            KeyError: The table has no such run; the message lists the fidelities the config was trained at, or
                says the config is not in the table.
        """
        i = self._index.get((config_id, n, w, float(resolution)))
        if i is not None:
            return i
        have = sorted({fidelity_id(*k[1:]) for k in self._index if k[0] == config_id})
        if have:
            raise KeyError(f"config {config_id} was not trained at {fidelity_id(n, w, resolution)}; it was trained "
                           f"at: {have}")
        raise KeyError(f"config {config_id} is not in the {self.task} table ({len(self)} trained (config, "
                       "fidelity) runs); use kind='surrogate', or a config from bench.table_configs()")

    def curve(self, run: int, slot: int = 0) -> np.ndarray:
        """One seed's learning curve.

        Args:
            run: The run's index.
            slot: The seed slot (0: the run's lowest seed).

        Returns:
            A read-only (max_epochs, metrics) array, NaN past the seed's last epoch.
        """
        return self.curves[run, slot]

    def config(self, run: int) -> dict[str, Any]:
        """The run's config and fidelity.

        Args:
            run: The run's index.

        Returns:
            A JAHS-Bench-201 dict: the config keys plus N, W and Resolution, as Python scalars.
        """
        c = self.configs.iloc[run].to_dict()
        f = self.fidelities.iloc[run].to_dict()
        return {**{k: (v.item() if hasattr(v, "item") else v) for k, v in c.items()},
                "N": int(f["N"]), "W": int(f["W"]), "Resolution": float(f["Resolution"])}


def _corrected(bundle: Bundle, df: pd.DataFrame) -> pd.DataFrame:
    """The table with its timings divided by the bundle's per-task speed factors (fit_bundle wrote them)."""
    path = bundle.speed_factors_path()
    if path is None:
        raise FileNotFoundError(f"the {bundle.task} bundle ships no speed factors, so its table has measured "
                                "timings only; use timings='measured', or refit it with `python -m generation fit "
                                "TABLE -o BUNDLE --ship-table` (with the speed correction on)")
    sf = pd.read_parquet(io.BytesIO(bundle.read_file(bundle.manifest.table.speed_factors))).set_index("task_id")
    df = df.copy()
    for m in sf.columns:
        if m in df.columns:
            df[m] = df[m] / df["task_id"].map(sf[m]).fillna(1.0)
    return df


@functools.lru_cache(maxsize=8)
def run_table(bundle: Bundle, metrics: tuple[str, ...], timings: str) -> RunTable:
    """The process's one read-only :class:`RunTable` per (bundle, metrics, timings).

    Args:
        bundle: A bundle that ships its table.
        metrics: The metric columns, in order.
        timings: ``"measured"`` or ``"corrected"``.

    Returns:
        A cached :class:`RunTable` (built on the first call).
    """
    return RunTable(bundle, metrics, timings)
