"""The query API that JAHS-Bench-201 users know.

>>> import jahs_gym
>>> bench = jahs_gym.Benchmark("fashion_mnist")          # doctest: +SKIP
>>> config = bench.sample_config(seed=0)                  # doctest: +SKIP
>>> bench(config, nepochs=5)                              # doctest: +SKIP
{5: {'valid_acc': ..., 'runtime': ..., ...}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from jahs_gym.bundle import Bundle, load_bundle
from jahs_gym.space import (
    ACTIVATIONS,
    N_VALUES,
    OP_KEYS,
    RESOLUTIONS,
    W_VALUES,
    Config,
    Fidelity,
    SpaceError,
    as_generator,
    encode_arrays,
    frame_columns,
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
        if isinstance(task, os.PathLike):
            task = os.fspath(task)
        if not isinstance(task, str) or not task:
            raise ValueError(f"task={task!r} is not allowed; allowed: an installed task's name (`jahs-gym tasks`) or "
                             "a bundle folder")
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; allowed: {list(KINDS)}")
        metrics = _metric_list(metrics)
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
        return sample_config(as_generator(seed, "seed")).as_dict()

    def __call__(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                 full_trajectory: bool = False, **fidelity: Any) -> dict[int, dict[str, float]]:
        """``{epoch: {metric: value}}`` for ``config`` trained ``nepochs`` epochs.

        The epoch comes from ``nepochs``, the keyword ``epoch`` or the config's ``"epoch"`` key, whichever is
        given (two that disagree are refused), else the task's max epochs. N, W and Resolution likewise come
        from the config or from keywords (defaults 5, 16, 1.0). ``full_trajectory``: every epoch 1..epoch.
        """
        if not isinstance(full_trajectory, (bool, np.bool_)):
            raise ValueError(f"full_trajectory={full_trajectory!r} must be True or False")
        cfg, fid = self._parse(config, nepochs, fidelity)
        epochs = list(range(1, fid.epoch + 1)) if full_trajectory else [fid.epoch]
        if self.kind == "table":
            return self._from_table(cfg, fid, epochs)
        x = self._encode_curve(cfg, fid, epochs)
        y = self.predictor.predict(x)
        return {e: dict(zip(self.metrics, map(float, row))) for e, row in zip(epochs, y)}

    def resolve(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                **fidelity: Any) -> dict[str, Any]:
        """The full JAHS-Bench-201 dict (config keys, N, W, Resolution, epoch) that ``self(config, nepochs,
        **fidelity)`` answers for: defaults filled in, every value checked."""
        cfg, fid = self._parse(config, nepochs, fidelity)
        return {**cfg.as_dict(), **fid.as_dict()}

    def random_sample(self, random_state: int | np.random.Generator | None = None, nepochs: int | None = None,
                      full_trajectory: bool = False) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
        """``(config, results)`` as JAHS-Bench-201's ``random_sample``: a random config and fidelity.

        ``config`` holds the config keys plus N, W and Resolution; ``results`` is what ``self(config, nepochs,
        full_trajectory)`` answers. kind="surrogate" samples the whole space; kind="table" samples a trained
        (config, fidelity) of the table (``nepochs`` defaults to the last epoch it trained).
        """
        rng = as_generator(random_state, "random_state")
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

    def learning_curve(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                       **fidelity: Any) -> pd.DataFrame:
        """The learning curve (epochs 1..the query's epoch, default the max) as a DataFrame, in one batched call."""
        out = self(config, nepochs=nepochs, full_trajectory=True, **fidelity)
        return pd.DataFrame.from_dict(out, orient="index").rename_axis("epoch")

    def query(self, df: pd.DataFrame) -> pd.DataFrame:
        """Batch: rows with the config keys plus N, W, Resolution, epoch -> the metrics (same index).

        Every row is checked with the scalar API's rules (:func:`jahs_gym.space.frame_columns`).
        """
        c = frame_columns(df, self.max_epochs)
        if self.kind == "table":
            rows = []
            for i in range(len(df)):
                cfg = Config(*c["ops"][i].tolist(), Activation=ACTIVATIONS[c["activation"][i]],
                             TrivialAugment=bool(c["trivial_augment"][i]), LearningRate=float(c["learning_rate"][i]),
                             WeightDecay=float(c["weight_decay"][i]))
                fid = Fidelity(int(c["n"][i]), int(c["w"][i]), float(c["resolution"][i]), int(c["epoch"][i]))
                rows.append(self._from_table(cfg, fid, [fid.epoch])[fid.epoch])
            return pd.DataFrame(rows, columns=list(self.metrics), index=df.index)
        y = self.predictor.predict(encode_arrays(**c))
        return pd.DataFrame(y, columns=list(self.metrics), index=df.index)

    # ------------------------------------------------------------------------------- helpers
    def _parse(self, config: Mapping[str, Any] | Config, nepochs: Any,
               fidelity: Mapping[str, Any]) -> tuple[Config, Fidelity]:
        """One Config and Fidelity from the config and the call's fidelity arguments; a key given twice with two
        values is refused (never silently overridden)."""
        if isinstance(config, Config):
            merged = config.as_dict()
        elif isinstance(config, Mapping):
            merged = dict(config)
        else:
            raise SpaceError(f"config={config!r:.60} must be a dict of JAHS-Bench-201 keys (Op1..Op6, Activation, "
                             "TrivialAugment, Optimizer, LearningRate, WeightDecay, optional N, W, Resolution, epoch) "
                             f"or a jahs_gym.Config; got {type(config).__name__}")
        sources: dict[str, list[tuple[str, Any]]] = {k: [(f"config[{k!r}]", v)] for k, v in merged.items()}
        for k, v, name in [*((k, v, k) for k, v in fidelity.items()),
                           *([] if nepochs is None else [("epoch", nepochs, "nepochs")])]:
            sources.setdefault(k, []).append((name, v))
        for k, vals in sources.items():
            (a, va), *rest = vals
            for b, vb in rest:
                if not _same(va, vb):
                    raise SpaceError(f"{a}={va!r} and {b}={vb!r} disagree; give the {k} once")
            merged[k] = va
        merged.setdefault("epoch", self.max_epochs)
        cfg, fid = split_dict(merged)
        if fid.epoch > self.max_epochs:
            raise SpaceError(self._too_many_epochs(fid.epoch))
        return cfg, fid

    def _too_many_epochs(self, epoch: int) -> str:
        raw = dict(self.bundle.manifest.protocol.raw)
        images = f", {raw['n_train']:,} training images" if raw.get("n_train") else ""
        return (f"epoch={epoch} is out of range for task {self.task!r}: its protocol trains {self.max_epochs} "
                f"epochs{images}; allowed: 1..{self.max_epochs}. (JAHS-Bench-201 trained 200 epochs; jahs-gym's "
                "tasks are shorter protocols: `jahs-gym tasks` shows each one's)")

    def _encode_curve(self, cfg: Config, fid: Fidelity, epochs: list[int]) -> np.ndarray:
        n = len(epochs)
        ops = np.tile([getattr(cfg, k) for k in OP_KEYS], (n, 1))
        return encode_arrays(ops, np.full(n, ACTIVATIONS.index(cfg.Activation)), np.full(n, float(cfg.TrivialAugment)),
                             np.full(n, cfg.LearningRate), np.full(n, cfg.WeightDecay), np.full(n, fid.N),
                             np.full(n, fid.W), np.full(n, fid.Resolution), np.asarray(epochs))

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


def _metric_list(metrics: Any) -> tuple[str, ...] | None:
    """None (every metric), one name, or an iterable of names; one ValueError for anything else."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return (metrics,)
    try:
        names = tuple(metrics)
    except TypeError:
        raise ValueError(f"metrics={metrics!r} must be None (all), a metric name or a list of names") from None
    bad = [m for m in names if not isinstance(m, str)]
    if bad or not names:
        raise ValueError(f"metrics={metrics!r} must be None (all), a metric name or a non-empty list of names")
    return names


def _same(a: Any, b: Any) -> bool:
    """Whether two values given for one key agree (``1`` and ``1.0`` do; anything incomparable does not)."""
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False
