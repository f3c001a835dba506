"""The query API that JAHS-Bench-201 users know, with the original's signature.

>>> import jahs_gym
>>> bench = jahs_gym.Benchmark(task="fashion_mnist")      # doctest: +SKIP
>>> config = bench.sample_config(random_state=0)          # doctest: +SKIP  (N, W, Resolution and epoch included)
>>> bench(config, nepochs=config["epoch"])                # doctest: +SKIP
{10: {'valid_acc': ..., 'runtime': ..., ...}}

``jahs_gym.compat`` is the drop-in module for code written against ``jahs_bench`` (change only the import): the
same class, answering with the original's metric names (``valid-acc``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from enum import Enum, unique
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jahs_gym.bundle import Bundle, installed_tasks, load_bundle
from jahs_gym.live import LiveRuns
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
    check_epoch,
    encode_arrays,
    frame_columns,
    sample_config,
    split_dict,
)
from jahs_gym.table import TIMINGS, RunTable, run_table

_log = logging.getLogger(__name__)


@unique
class BenchmarkTypes(Enum):
    """JAHS-Bench-201's kinds of query (``kind=``)."""

    Surrogate = "surrogate"
    Table = "table"
    Live = "live"


@unique
class BenchmarkTasks(Enum):
    """JAHS-Bench-201's tasks plus MNIST; a task answers when its bundle is installed (``jahs-gym tasks``)."""

    CIFAR10 = "cifar10"
    ColorectalHistology = "colorectal_histology"
    FashionMNIST = "fashion_mnist"
    MNIST = "mnist"


KINDS = ("surrogate", "table", "live")
LIVE_DIR = "jahs_bench_data"  # kind="live" without save_dir: JAHS-Bench-201's default data folder, in the cwd
NAMES = ("native", "original")
# JAHS-Bench-201 spells the per-split metrics with a hyphen (valid-acc); the others are spelled alike
ORIGINAL_SPELLING: dict[str, str] = {f"{split}_{m}": f"{split}-{m}" for split in ("train", "valid", "test")
                                     for m in ("acc", "loss")}
_NATIVE_SPELLING = {v: k for k, v in ORIGINAL_SPELLING.items()}
NO_DOWNLOAD = ("jahs-gym never downloads: the fashion_mnist and mnist surrogates and tables ship inside the package, "
               "other tasks come from training them with `python -m generation` (README: 'Generate your own "
               "benchmark') and pointing save_dir= or JAHS_GYM_DATA at the folder holding the bundle")


class Benchmark:
    """Query a task: ``kind="surrogate"`` (XGBoost surrogates), ``kind="table"`` (the trained rows) or
    ``kind="live"`` (real training under the bundle's protocol, :mod:`jahs_gym.live`: each queried run is trained
    once into ``save_dir/live/<task>/`` as a shard, default ``save_dir`` ``./jahs_bench_data`` as in
    JAHS-Bench-201, and served from there again; timings measured on this machine; needs the ``generation``
    extra and the task's dataset). The signature is JAHS-Bench-201's, plus ``backend``, ``timings``, ``names``.

    Args:
        task: A task name (any case), a :class:`BenchmarkTasks` member or a bundle folder.
        kind: "surrogate", "table" or "live" (or a :class:`BenchmarkTypes` member).
        download: jahs-gym never downloads (the shipped tasks are embedded, others come from ``generation``);
            True only logs that and adds it to a missing task's error.
        save_dir: A folder searched first for the task's bundle, as ``JAHS_GYM_DATA`` (a bundle folder or a
            folder of them); kind="live" keeps its runs under it.
        metrics: One name or a list (``valid_acc`` or ``valid-acc``); only their models are loaded. None: all.
        lazy: False: load the surrogate now; True: at the first query.
        backend: The predictor's (see :mod:`jahs_gym.predictor`).
        timings: The surrogate predicts the timings (cpu_runtime, runtime, latency) at the training machine's
            median speed, "corrected" (the bundle's ``speed_correction`` took the machine's drift over hours out
            of its labels), or "measured" for a bundle fitted with ``--speed-window 0``. The table holds them as
            "measured" (its default) or, with "corrected", divided by each task's speed factor, as the surrogate
            was fitted on them. None: the kind's default; kind="live" allows only "measured".
        names: How answers spell the metrics: "native" (``valid_acc``; this class's default) or "original"
            (``valid-acc``, as JAHS-Bench-201; ``jahs_gym.compat.Benchmark``'s default).

    Raises:
        ValueError: An unknown kind, names or timings; a non-bool download or lazy; timings the kind or the
            bundle cannot give.
    """

    def __init__(self, task: str | BenchmarkTasks | os.PathLike = "fashion_mnist",
                 kind: str | BenchmarkTypes = "surrogate", download: bool = False,
                 save_dir: str | os.PathLike | None = None, metrics: str | list[str] | None = None,
                 lazy: bool = False, *, backend: str | None = None, timings: str | None = None,
                 names: str = "native") -> None:
        kind = kind.value if isinstance(kind, BenchmarkTypes) else kind
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; allowed: {list(KINDS)} or a BenchmarkTypes member")
        for name, flag in (("download", download), ("lazy", lazy)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{name}={flag!r} must be True or False")
        if names not in NAMES:
            raise ValueError(f"names={names!r} is not allowed; allowed: {list(NAMES)}")
        metrics = _metric_list(metrics)
        if timings is not None and timings not in TIMINGS:
            raise ValueError(f"timings={timings!r} is not allowed; allowed: {list(TIMINGS)}")
        if download:
            _log.info("download=True: %s", NO_DOWNLOAD)
        if kind == "live":
            if timings not in (None, "measured"):
                raise ValueError(f"timings={timings!r} with kind='live': live runs' timings are measured on this "
                                 "machine; allowed: None or 'measured'")
            timings, save_dir = "measured", LIVE_DIR if save_dir is None else save_dir
            if isinstance(save_dir, (str, os.PathLike)):
                Path(save_dir).mkdir(parents=True, exist_ok=True)
        self.bundle, task = _load(task, save_dir, download)
        fitted = "corrected" if self.bundle.speed_corrected else "measured"  # what the surrogate predicts
        timings = timings or ("measured" if kind == "table" else fitted)
        if kind == "surrogate" and timings != fitted:  # (kind="live" set timings="measured" above)
            if fitted == "corrected":
                raise ValueError("timings='measured' needs kind='table': the surrogate predicts the timings at the "
                                 "training machine's median speed (timings='corrected'); only the table holds them "
                                 "as measured")
            raise ValueError(f"timings='corrected': the {task} surrogate was fitted without the speed correction "
                             "(`python -m generation fit --speed-window 0`), so it predicts the timings as measured; "
                             "use timings='measured', or refit it with --speed-window > 0")
        self.task, self.kind, self.timings, self.names = task, kind, timings, names
        self.max_epochs = self.bundle.max_epochs
        self._native: tuple[str, ...] = self.bundle._check_metrics(
            None if metrics is None else tuple(_NATIVE_SPELLING.get(m, m) for m in metrics))
        # the metrics, in this object's spelling (the keys of every answer)
        self.metrics: tuple[str, ...] = tuple(ORIGINAL_SPELLING.get(m, m) if names == "original" else m
                                              for m in self._native)
        self._predictor = None
        self._backend = backend
        self._runs: RunTable | None = run_table(self.bundle, self._native, timings) if kind == "table" else None
        self._live: LiveRuns | None = None
        if kind == "live":  # runs kept in save_dir/live/<task>: save_dir itself may hold bundles
            self._live = LiveRuns(self.bundle.task, dict(self.bundle.manifest.protocol.raw), Path(save_dir) / "live")
        if kind == "surrogate" and not lazy:
            self.predictor  # noqa: B018  (load the models now)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_predictor"] = None  # rebuilt lazily from the (pickled, re-verified) bundle
        return state

    @property
    def predictor(self) -> Any:
        """The surrogate's predictor of this object's metrics (loaded at the first use)."""
        if self._predictor is None:
            self._predictor = self.bundle.predictor(self._native, self._backend)
        return self._predictor

    def sample_config(self, random_state: int | np.random.Generator | np.random.RandomState | None = None
                      ) -> dict[str, Any]:
        """A random joint config as JAHS-Bench-201 returns it: the config keys plus N, W, Resolution and epoch.

        kind="surrogate" samples the whole space (uniform choices, log-uniform LearningRate and WeightDecay);
        kind="table" draws one of the table's trained runs (config and fidelity), as the original draws a trained
        row. ``epoch`` is the task's max epochs (the last epoch the run trained, for a table run that diverged),
        so ``self(config)``, ``self(config, nepochs=config["epoch"])`` and ``self(config, nepochs=self.max_epochs)``
        agree; another ``nepochs`` would disagree with the config's epoch and is refused: set ``config["epoch"]``
        or drop it.

        Args:
            random_state: None, an integer >= 0, a numpy Generator or RandomState.

        Returns:
            The config dict.
        """
        rng = as_generator(random_state, "random_state")
        if self._runs is not None:
            run = int(rng.integers(len(self._runs)))
            # a diverged run stops early: the last epoch its lowest seed trained
            return {**self._runs.config(run), "epoch": int(np.isfinite(self._runs.curve(run)[:, 0]).sum())}
        return {**sample_config(rng).as_dict(), "N": N_VALUES[int(rng.integers(len(N_VALUES)))],
                "W": W_VALUES[int(rng.integers(len(W_VALUES)))],
                "Resolution": RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))], "epoch": self.max_epochs}

    def __call__(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                 full_trajectory: bool = False, **fidelity: Any) -> dict[int, dict[str, float]]:
        """``{epoch: {metric: value}}`` for ``config`` trained ``nepochs`` epochs (JAHS-Bench-201's output shape).

        The epoch comes from ``nepochs``, the keyword ``epoch`` or the config's ``"epoch"`` key, whichever is
        given (two that disagree are refused), else the task's max epochs; above the max is refused, naming the
        task's protocol (jahs-gym's tasks train 10 epochs where JAHS-Bench-201's trained 200). N, W and
        Resolution likewise come from the config or from keywords (defaults 5, 16, 1.0).
        ``full_trajectory``: every epoch 1..epoch.
        """
        if not isinstance(full_trajectory, (bool, np.bool_)):
            raise ValueError(f"full_trajectory={full_trajectory!r} must be True or False")
        cfg, fid = self._parse(config, nepochs, fidelity)
        epochs = list(range(1, fid.epoch + 1)) if full_trajectory else [fid.epoch]
        if self.kind != "surrogate":
            return self._measured(cfg, fid, epochs)
        x = self._encode_curve(cfg, fid, epochs)
        y = self.predictor.predict(x)
        return {e: dict(zip(self.metrics, map(float, row))) for e, row in zip(epochs, y)}

    def resolve(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                **fidelity: Any) -> dict[str, Any]:
        """The full JAHS-Bench-201 dict (config keys, N, W, Resolution, epoch) that ``self(config, nepochs,
        **fidelity)`` answers for: defaults filled in, every value checked.

        Args:
            config: As :meth:`__call__` takes it.
            nepochs: As :meth:`__call__` takes it.
            **fidelity: As :meth:`__call__` takes it.

        Returns:
            The dict (SpaceError for a bad or conflicting value).
        """
        cfg, fid = self._parse(config, nepochs, fidelity)
        return {**cfg.as_dict(), **fid.as_dict()}

    def random_sample(self, random_state: int | np.random.Generator | None = None, nepochs: int | None = None,
                      full_trajectory: bool = False) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
        """``(config, results)``: :meth:`sample_config` (its epoch set to ``nepochs`` when given) and its answer.

        Args:
            random_state: As :meth:`sample_config` takes it.
            nepochs: The epoch to query; None for the sampled config's.
            full_trajectory: Every epoch 1..epoch.

        Returns:
            The config and ``self(config, full_trajectory=full_trajectory)``.
        """
        config = self.sample_config(random_state)
        if nepochs is not None:
            config["epoch"] = nepochs
        return config, self(config, full_trajectory=full_trajectory)

    def learning_curve(self, config: Mapping[str, Any] | Config, nepochs: int | None = None,
                       **fidelity: Any) -> pd.DataFrame:
        """The learning curve (epochs 1..the query's epoch, default the max) as a DataFrame, in one batched call.

        Args:
            config: As :meth:`__call__` takes it.
            nepochs: As :meth:`__call__` takes it.
            **fidelity: As :meth:`__call__` takes it.

        Returns:
            One row per epoch (index ``epoch``), one column per metric.
        """
        out = self(config, nepochs=nepochs, full_trajectory=True, **fidelity)
        return pd.DataFrame.from_dict(out, orient="index").rename_axis("epoch")

    def query(self, df: pd.DataFrame) -> pd.DataFrame:
        """Batch: rows with the config keys plus N, W, Resolution, epoch -> the metrics (same index).

        Every row is checked with the scalar API's rules (:func:`jahs_gym.space.frame_columns`).

        Args:
            df: One row per query, with exactly the columns :data:`jahs_gym.space.ROW_KEYS`.

        Returns:
            One column per metric, with ``df``'s index.
        """
        c = frame_columns(df, self.max_epochs)
        if self.kind != "surrogate":
            rows = []
            for i in range(len(df)):
                cfg = Config(*c["ops"][i].tolist(), Activation=ACTIVATIONS[c["activation"][i]],
                             TrivialAugment=bool(c["trivial_augment"][i]), LearningRate=float(c["learning_rate"][i]),
                             WeightDecay=float(c["weight_decay"][i]))
                fid = Fidelity(int(c["n"][i]), int(c["w"][i]), float(c["resolution"][i]), int(c["epoch"][i]))
                rows.append(self._measured(cfg, fid, [fid.epoch])[fid.epoch])
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
        for name, v in sources.get("epoch", []):  # an epoch beyond the protocol is named first, wherever it came from
            if check_epoch("Fidelity", v) > self.max_epochs:
                raise SpaceError(self._too_many_epochs(name, int(v)))
        for k, vals in sources.items():
            (a, va), *rest = vals
            for b, vb in rest:
                if not _same(va, vb):
                    raise SpaceError(f"{a}={va!r} and {b}={vb!r} disagree; give the {k} once (drop the config's "
                                     f"{k!r} key, or set config[{k!r}] = {vb!r} and leave out {b})")
            merged[k] = va
        merged.setdefault("epoch", self.max_epochs)
        return split_dict(merged)

    def _too_many_epochs(self, name: str, epoch: int) -> str:
        raw = dict(self.bundle.manifest.protocol.raw)
        images = f", {raw['n_train']:,} training images" if raw.get("n_train") else ""
        return (f"{name}={epoch} is out of range for task {self.task!r}: its protocol trains {self.max_epochs} "
                f"epochs{images}; allowed: 1..{self.max_epochs}. (JAHS-Bench-201 trained 200 epochs; jahs-gym's "
                "tasks are shorter protocols: `jahs-gym tasks` shows each one's)")

    def _encode_curve(self, cfg: Config, fid: Fidelity, epochs: list[int]) -> np.ndarray:
        n = len(epochs)
        ops = np.tile([getattr(cfg, k) for k in OP_KEYS], (n, 1))
        return encode_arrays(ops, np.full(n, ACTIVATIONS.index(cfg.Activation)), np.full(n, float(cfg.TrivialAugment)),
                             np.full(n, cfg.LearningRate), np.full(n, cfg.WeightDecay), np.full(n, fid.N),
                             np.full(n, fid.W), np.full(n, fid.Resolution), np.asarray(epochs))

    def _measured(self, cfg: Config, fid: Fidelity, epochs: list[int]) -> dict[int, dict[str, float]]:
        """The measured metrics at ``epochs``: of the table run's lowest seed, or of the live run (trained now
        unless the live folder holds it that far)."""
        if self._live is not None:
            rows = self._live.curve(cfg, fid)
            curve = np.full((self.max_epochs, len(self._native)), np.nan)
            curve[rows["epoch"].to_numpy() - 1] = rows[list(self._native)].to_numpy(dtype=float)
        else:
            assert self._runs is not None
            curve = self._runs.curve(self._runs.find(cfg.config_id, fid.N, fid.W, fid.Resolution))
        out = {}
        for e in epochs:
            if not np.isfinite(curve[e - 1, 0]):
                last = int(np.isfinite(curve[:, 0]).sum())
                raise KeyError(f"config {cfg.config_id} at {fid.fidelity_id} trained epochs 1..{last} (it diverged "
                               f"there); epoch {e} was not trained")
            out[e] = dict(zip(self.metrics, map(float, curve[e - 1])))
        return out

    def table_configs(self) -> pd.DataFrame:
        """(kind='table') The trained configs and fidelities, one row each (a run of the table).

        Returns:
            config_id, the config keys, N, W and Resolution, one row per run.

        Raises:
            ValueError: This object's kind is not "table".
        """
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


def _load(task: Any, save_dir: Any, download: bool) -> tuple[Bundle, str]:
    """(bundle, task name or folder): from ``save_dir`` first (a bundle folder or a folder of them), else as
    installed (``JAHS_GYM_DATA``, then the shipped bundles); a task name in any case."""
    if isinstance(task, BenchmarkTasks):
        task = task.value
    if isinstance(task, os.PathLike):
        task = os.fspath(task)
    if not isinstance(task, str) or not task:
        raise ValueError(f"task={task!r} is not allowed; allowed: an installed task's name (`jahs-gym tasks`), a "
                         "BenchmarkTasks member or a bundle folder")
    if save_dir is not None:
        if not isinstance(save_dir, (str, os.PathLike)) or not Path(save_dir).is_dir():
            raise ValueError(f"save_dir={save_dir!r} is not a folder; allowed: None or a folder holding bundles "
                             "(as JAHS_GYM_DATA)")
        root = Path(save_dir)
        for folder in (root / task, root / task.lower(), root):
            if (folder / "manifest.json").is_file() and (folder != root or folder.name.lower() == task.lower()):
                return load_bundle(str(folder)), folder.name
    if not (Path(task) / "manifest.json").is_file():
        have = installed_tasks()
        if task not in have:
            task = next((t for t in have if t.lower() == task.lower()), task)
    try:
        return load_bundle(task), task
    except KeyError as e:
        if download:
            raise KeyError(f"{e.args[0]}. download=True: {NO_DOWNLOAD}") from None
        raise
