"""The metric schema: the single source of truth for table columns and surrogate outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jahs_gym.space import CONFIG_KEYS, FIDELITY_KEYS


@dataclass(frozen=True)
class Metric:
    """One measured column. ``per`` is ``"epoch"`` or ``"model"``; ``transform`` is what the surrogate fits."""

    name: str
    unit: str
    lo: float
    hi: float
    per: str
    predicted: bool
    transform: str = "none"  # what the surrogate fits: "none", "log", "log1p" or "logit" (jahs_gym.transforms)
    description: str = ""


_INF = math.inf
METRICS: tuple[Metric, ...] = (
    Metric("train_loss", "nats", 0, _INF, "epoch", True, "log1p", "mean cross-entropy over the epoch's batches"),
    Metric("train_acc", "%", 0, 100, "epoch", True, "logit", "accuracy on the augmented training batches"),
    Metric("train_duration", "s", 0, _INF, "epoch", False, "log", "wall seconds of the epoch's training loop"),
    Metric("valid_loss", "nats", 0, _INF, "epoch", True, "log1p", "cross-entropy on the validation split"),
    Metric("valid_acc", "%", 0, 100, "epoch", True, "logit", "accuracy on the validation split"),
    Metric("valid_duration", "s", 0, _INF, "epoch", False, "log", "wall seconds to evaluate the validation split"),
    Metric("test_loss", "nats", 0, _INF, "epoch", True, "log1p", "cross-entropy on the official test split"),
    Metric("test_acc", "%", 0, 100, "epoch", True, "logit", "accuracy on the official test split"),
    Metric("test_duration", "s", 0, _INF, "epoch", False, "log", "wall seconds to evaluate the test split"),
    Metric("runtime", "s", 0, _INF, "epoch", True, "log",
           "cumulative wall seconds of training and evaluation since the start of the run"),
    Metric("cpu_runtime", "s", 0, _INF, "epoch", True, "log",
           "cumulative process CPU seconds of training and evaluation: the runtime on a dedicated core, "
           "immune to other load on the machine; JAHS-v0 charges it as the cost"),
    Metric("latency", "s/img", 0, _INF, "epoch", True, "log", "forward seconds per image at batch 256 (eval)"),
    Metric("forward_duration", "s", 0, _INF, "epoch", False, "log", "seconds in forward passes while training"),
    Metric("backward_duration", "s", 0, _INF, "epoch", False, "log",
           "seconds in backward passes and optimiser steps"),
    Metric("data_load_duration", "s", 0, _INF, "epoch", False, "log", "seconds spent batching and augmenting"),
    Metric("lr", "1", 0, _INF, "epoch", False, "none", "learning rate used during the epoch"),
    Metric("peak_rss_MB", "MB", 0, _INF, "epoch", False, "none", "peak resident memory of the process"),
    Metric("cpu_percent", "%", 0, _INF, "epoch", False, "none", "process CPU time / wall time during the epoch"),
    Metric("FLOPS", "MFLOPs", 0, _INF, "model", True, "log",
           "multiply-accumulates of conv and linear layers for one image, millions"),
    Metric("size_MB", "M params", 0, _INF, "model", True, "log", "parameters / 1e6"),
    Metric("n_params", "count", 0, _INF, "model", False, "none", "number of trainable parameters"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
SURROGATE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.predicted)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

STATUSES: tuple[str, ...] = ("ok", "diverged", "failed")
ID_COLUMNS: dict[str, str] = {
    "task": "string", "task_id": "string", "config_id": "string", "fidelity_id": "string",
    "seed": "int", "status": "string", "rank": "int", "host": "string",
    "torch_version": "string", "jahs_gym_version": "string",
}
CONFIG_COLUMNS: dict[str, str] = {
    **{k: "int" for k in CONFIG_KEYS[:6]}, "Activation": "string", "TrivialAugment": "bool",
    "Optimizer": "string", "LearningRate": "float", "WeightDecay": "float",
}
FIDELITY_COLUMNS: dict[str, str] = {"N": "int", "W": "int", "Resolution": "float", "epoch": "int"}
# when the epoch began (Unix seconds); NaN in rows trained before it was recorded. Runtime labels drift with
# the machine's state over hours: benchmarks/runtime_noise.py measures it against time apart
WHEN_COLUMNS: dict[str, str] = {"epoch_started": "float"}
# optional (merge adds it from a run's shard_dates.json): for a task from before epoch_started was recorded,
# the Unix time of the git commit that added its shard. An upper bound on when it ran, coarse (commits land
# every 10-60 min); generation.fit.task_times falls back to it
OPTIONAL_COLUMNS: dict[str, str] = {"shard_committed": "float"}
TABLE_COLUMNS: dict[str, str] = {**ID_COLUMNS, **CONFIG_COLUMNS, **FIDELITY_COLUMNS,
                                 **{m: "float" for m in METRIC_NAMES}, **WHEN_COLUMNS}
assert set(FIDELITY_COLUMNS) == set(FIDELITY_KEYS)


class SchemaError(ValueError):
    """A table that does not match :data:`TABLE_COLUMNS`."""


def validate_table(df: Any) -> None:
    """Check a table against :data:`TABLE_COLUMNS` and the metrics' bounds.

    Args:
        df: A pandas DataFrame of table rows.

    Raises:
        SchemaError: Naming every missing column, wrong dtype, out-of-bounds value and unknown status at once.
    """
    import pandas as pd

    problems: list[str] = []
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        problems.append(f"missing column(s) {missing}")
    for col, kind in {**TABLE_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if col not in df.columns:
            continue
        s = df[col]
        ok = {"int": pd.api.types.is_integer_dtype, "float": pd.api.types.is_numeric_dtype,
              "bool": pd.api.types.is_bool_dtype,
              "string": lambda x: pd.api.types.is_string_dtype(x) or pd.api.types.is_object_dtype(x)}[kind](s)
        if not ok:
            problems.append(f"column {col} has dtype {s.dtype}, expected {kind}")
    for m in METRICS:
        if m.name in df.columns and pd.api.types.is_numeric_dtype(df[m.name]):
            v = df[m.name]
            bad = v[(v < m.lo) | (v > m.hi)]
            if len(bad):
                problems.append(f"column {m.name} has {len(bad)} value(s) outside [{m.lo}, {m.hi}], "
                                f"e.g. {bad.iloc[0]!r}")
    if "status" in df.columns:
        bad = sorted(set(df["status"].unique()) - set(STATUSES))
        if bad:
            problems.append(f"column status has value(s) {bad}; allowed: {list(STATUSES)}")
    if problems:
        raise SchemaError("table does not match jahs_gym.metrics.TABLE_COLUMNS: " + "; ".join(problems))
