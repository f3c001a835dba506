"""Shard checks: is ``shards/<task_id>.parquet`` a complete, well-formed run of its planned task?

``run`` counts a shard as done only when it passes (a bad one is moved to ``shards/rejected/`` with its
reasons and trained again); ``merge`` refuses to write a table while any shard fails, naming each file
and its problems. One rule for both: :func:`check_shard`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from jahs_gym.metrics import METRIC_NAMES, TABLE_COLUMNS, SchemaError, validate_table
from jahs_gym.space import CONFIG_KEYS, Config, Fidelity, SpaceError, fidelity_id, task_id

if TYPE_CHECKING:
    from generation.plan import PlannedTask
    from jahs_gym.protocol import Protocol

# columns that shards from before they were recorded lack: cpu_runtime is derived exactly from runtime and
# cpu_percent (generation.train.add_cpu_runtime), epoch_started becomes NaN (when the epoch ran is unknown)
LEGACY_COLUMNS: tuple[str, ...] = ("cpu_runtime", "epoch_started")
# identity columns that hold one value in every row of a shard (rank and host may change on a resume)
CONSTANT_COLUMNS: tuple[str, ...] = ("task", "task_id", "config_id", "fidelity_id", "seed", *CONFIG_KEYS,
                                     "N", "W", "Resolution")
REJECTED = "rejected"


@dataclass
class ShardCheck:
    """A shard's rows (legacy columns filled) and its problems; ``ok`` when there are none."""

    path: Path
    frame: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)
    filled: tuple[str, ...] = ()  # the LEGACY_COLUMNS this shard lacked

    @property
    def ok(self) -> bool:
        """True when the shard has no problems."""
        return not self.problems


def _native(v: object) -> object:
    return v.item() if hasattr(v, "item") else v


def derive_cpu_runtime(df: pd.DataFrame) -> pd.DataFrame:
    """Derive cpu_runtime of rows from before it was recorded (runtime x cpu_percent, accumulated).

    Args:
        df: Rows of one or more runs without a cpu_runtime column.

    Returns:
        The rows, sorted by task and epoch, with cpu_runtime.
    """
    from generation.train import add_cpu_runtime

    df = df.sort_values(["task_id", "epoch"])
    parts = [pd.DataFrame(add_cpu_runtime(g.to_dict("records"))) for _, g in df.groupby("task_id", sort=False)]
    return pd.concat(parts, ignore_index=True)


def _read(check: ShardCheck) -> pd.DataFrame | None:
    """The shard's rows with the table's columns (legacy ones filled), or None with the reason in ``check``."""
    path = check.path
    try:
        size = path.stat().st_size
    except OSError as e:
        check.problems.append(f"unreadable ({type(e).__name__}: {e})")
        return None
    if size == 0:
        check.problems.append("empty file (0 bytes): a write that never finished")
        return None
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as e:  # pyarrow raises several types for truncated or foreign files
        check.problems.append(f"not a readable parquet file ({type(e).__name__}: {str(e)[:160]})")
        return None
    if len(df) == 0:
        check.problems.append("no rows")
        return None
    missing = [c for c in TABLE_COLUMNS if c not in df.columns and c not in LEGACY_COLUMNS]
    extra = [c for c in df.columns if c not in TABLE_COLUMNS]
    if missing:
        check.problems.append(f"missing column(s) {missing}")
    if extra:
        check.problems.append(f"column(s) {extra} are not in jahs_gym.metrics.TABLE_COLUMNS")
    if missing or extra:
        return None
    check.filled = tuple(c for c in LEGACY_COLUMNS if c not in df.columns)
    if "cpu_runtime" in check.filled:
        try:
            df = derive_cpu_runtime(df)
        except (TypeError, ValueError, KeyError) as e:
            check.problems.append(f"cpu_runtime cannot be derived ({type(e).__name__}: {e})")
            return None
    if "epoch_started" in check.filled:
        df = df.assign(epoch_started=float("nan"))
    return df[list(TABLE_COLUMNS)].sort_values("epoch", kind="stable").reset_index(drop=True)


def _validate(checks: list[ShardCheck], frames: list[pd.DataFrame]) -> list[bool]:
    """jahs_gym.metrics.validate_table on every frame (schema, dtypes, bounds, statuses); False where it fails.

    Frames with the same dtypes are validated together (one call instead of thousands), and one by one only
    when their group fails, to name the file."""
    groups: dict[tuple, list[int]] = {}
    for i, df in enumerate(frames):
        groups.setdefault(tuple(map(str, df.dtypes)), []).append(i)
    ok = [True] * len(frames)
    for idx in groups.values():
        try:
            validate_table(pd.concat([frames[i] for i in idx], ignore_index=True))
            continue
        except SchemaError:
            pass
        for i in idx:
            try:
                validate_table(frames[i])
            except SchemaError as e:
                checks[i].problems.append(str(e).split(": ", 1)[-1])
                ok[i] = False
    return ok


def _identity(check: ShardCheck, df: pd.DataFrame) -> tuple[Config, Fidelity, int] | None:
    varying = [c for c in CONSTANT_COLUMNS if df[c].nunique(dropna=False) > 1]
    if varying:
        check.problems.append(f"column(s) {varying} change between rows: rows of more than one run")
        return None
    row = df.iloc[0]
    if row["task_id"] != check.path.stem:
        check.problems.append(f"task_id {row['task_id']!r} is not the file's name {check.path.stem!r}")
    try:
        cfg = Config.from_dict({k: _native(row[k]) for k in CONFIG_KEYS})
        fid = Fidelity(_native(row["N"]), _native(row["W"]), _native(row["Resolution"]))
    except (SpaceError, TypeError, ValueError) as e:
        check.problems.append(f"config outside the search space: {e}")
        return None
    seed = int(row["seed"])
    want = {"config_id": cfg.config_id, "fidelity_id": fidelity_id(fid.N, fid.W, fid.Resolution),
            "task_id": task_id(cfg, fid.N, fid.W, fid.Resolution, seed)}
    for col, v in want.items():
        if row[col] != v:
            check.problems.append(f"{col} {row[col]!r} does not match the row's config and fidelity ({v!r})")
    return cfg, fid, seed


def _epochs(check: ShardCheck, df: pd.DataFrame, max_epochs: int | None) -> None:
    epochs = df["epoch"].tolist()
    status = df["status"].tolist()
    if epochs != list(range(1, len(df) + 1)):
        shown = epochs if len(epochs) <= 12 else [*epochs[:10], "...", epochs[-1]]
        check.problems.append(f"epochs {shown} are not 1..{len(df)} (missing or repeated epochs)")
    if any(s != "ok" for s in status[:-1]) or status[-1] not in ("ok", "diverged"):
        check.problems.append(f"statuses {sorted(set(status))}: allowed: 'ok' rows, the last one possibly "
                              "'diverged' (training stops there)")
    if max_epochs is not None:
        if len(df) > max_epochs or (len(df) < max_epochs and status[-1] != "diverged"):
            check.problems.append(f"{len(df)} epoch(s) where the plan trains {max_epochs} (max_epochs) and the run "
                                  "did not diverge: an unfinished run or one of another plan")
    metrics = df[list(METRIC_NAMES)].to_numpy(dtype=float)
    finite = np.isfinite(metrics)
    diverged = (df["status"] == "diverged").to_numpy()
    bad = ~finite & ~(np.isnan(metrics) & diverged[:, None])  # NaN only where the run diverged
    for j in np.flatnonzero(bad.any(axis=0))[:5]:
        i = int(np.flatnonzero(bad[:, j])[0])
        check.problems.append(f"{METRIC_NAMES[j]} is {metrics[i, j]} at epoch {epochs[i]} (status "
                              f"{status[i]!r}): allowed: a finite value, NaN only in a diverged epoch")


def check_shards(items: list[tuple[Path, PlannedTask | None]], protocol: Protocol | None) -> list[ShardCheck]:
    """Check shards: readable, the table's schema and bounds, one run whose config is in the space and whose ids
    match its file name, epochs 1..k with finite metrics (NaN only where it diverged).

    Args:
        items: (shard path, its planned task or None) pairs; with a task, the shard must be that task's run
            (config, fidelity, seed).
        protocol: The plan's protocol: each run has all its ``max_epochs`` epochs (fewer only when it diverged)
            of its task. None: epoch counts and the task are not checked.

    Returns:
        One :class:`ShardCheck` per item, in order.
    """
    checks = [ShardCheck(Path(p)) for p, _ in items]
    frames = [_read(c) for c in checks]
    read = [i for i, df in enumerate(frames) if df is not None]
    valid = _validate([checks[i] for i in read], [frames[i] for i in read])
    for i, good in zip(read, valid):
        if not good:
            continue
        check, df, task = checks[i], frames[i], items[i][1]
        ident = _identity(check, df)
        _epochs(check, df, protocol.max_epochs if protocol is not None else None)
        if protocol is not None and df["task"].iloc[0] != protocol.task:
            check.problems.append(f"task {df['task'].iloc[0]!r} where the plan's protocol is {protocol.task!r}")
        if task is not None and ident is not None:
            cfg, fid, seed = ident
            got = (cfg.config_id, fid.N, fid.W, fid.Resolution, seed)
            want = (task.config.config_id, task.N, task.W, task.Resolution, task.seed)
            if got != want:
                check.problems.append(f"(config_id, N, W, Resolution, seed) {got} is not the planned task's {want}")
        check.frame = df
    return checks


def check_shard(path: Path, task: PlannedTask | None = None, protocol: Protocol | None = None) -> ShardCheck:
    """:func:`check_shards` for one shard.

    Args:
        path: The shard.
        task: Its planned task, or None.
        protocol: The plan's protocol, or None.

    Returns:
        Its :class:`ShardCheck`.
    """
    return check_shards([(Path(path), task)], protocol)[0]


def check_run_shards(run_dir: Path, tasks: dict[str, PlannedTask] | None, protocol: Protocol | None
                     ) -> list[ShardCheck]:
    """Check every ``run_dir/shards/*.parquet`` against a plan.

    Args:
        run_dir: The run folder.
        tasks: The plan's tasks by id (None: no plan, each shard checked on its own). A shard whose name is not
            a planned task id fails with that reason (a shard of another plan).
        protocol: The plan's protocol, or None.

    Returns:
        One :class:`ShardCheck` per shard, in file-name order.
    """
    files = sorted((Path(run_dir) / "shards").glob("*.parquet"))
    known = [f for f in files if tasks is None or f.stem in tasks]
    checked = dict(zip(known, check_shards([(f, tasks[f.stem] if tasks else None) for f in known], protocol)))
    where = Path(run_dir) / "plan.json"
    return [checked.get(f) or ShardCheck(f, problems=[f"not a task of {where}: a shard of another plan, or "
                                                      "copied in"]) for f in files]


def reject(check: ShardCheck) -> Path:
    """Move a failed shard to ``shards/rejected/<name>.<time>.parquet`` next to a ``.json`` of its problems.

    Args:
        check: The failed shard's check.

    Returns:
        Where the shard is now.
    """
    folder = check.path.parent / REJECTED
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = folder / f"{check.path.stem}.{stamp}.parquet"
    k = 1
    while dest.exists():
        dest, k = folder / f"{check.path.stem}.{stamp}-{k}.parquet", k + 1
    note = dest.with_suffix(".json")
    tmp = note.with_name(f".{note.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"file": check.path.name, "moved": stamp, "problems": check.problems}, indent=1))
    os.replace(tmp, note)
    os.replace(check.path, dest)
    return dest
