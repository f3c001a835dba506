"""Merge a run's shards into one table: ``python -m generation merge RUN_DIR -o table.parquet``.

Every shard is checked first (``generation.shards.check_shard``: readable, the table's schema and bounds,
finite metrics, a config in the space, ids that match its file name and, where the run folder has its
plan.json, a task of that plan with all its epochs); while any fails, no table is written and each file is
named with its problems. Nothing is dropped silently: duplicates, failed tasks, diverged runs and
unfinished tasks are all reported.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from generation.plan import Plan
from generation.shards import check_run_shards
from jahs_gym.metrics import OPTIONAL_COLUMNS, TABLE_COLUMNS, validate_table

SHARD_DATES = "shard_dates.json"


class MergeError(ValueError):
    """Shards that cannot go into a table (each file named with its problems), or run folders that do not
    belong in one table."""


@dataclass
class MergeReport:
    """What a merge kept, filled in and dropped: counts, and the task ids of each kind (``text`` prints it)."""

    shards: int = 0
    rows: int = 0
    tasks: int = 0
    duplicates_dropped: int = 0
    diverged_tasks: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    cpu_runtime_derived: int = 0
    when_unrecorded: int = 0
    dated_by_commit: int = 0
    without_plan: list[str] = field(default_factory=list)  # run folders whose shards were checked on their own

    def text(self) -> str:
        """The report for the command line.

        Returns:
            One line per count (up to 10 failed tasks and tasks with gaps named).
        """
        lines = [f"merged {self.shards} shard(s): {self.tasks} tasks, {self.rows} rows",
                 "every shard checked" + (f"; folder(s) without plan.json, so not against a plan (epoch counts, "
                                          f"membership): {self.without_plan}" if self.without_plan
                                          else " against its folder's plan.json"),
                 f"duplicate (task_id, epoch) rows dropped: {self.duplicates_dropped}",
                 f"shards from before cpu_runtime was recorded (derived exactly from runtime x cpu_percent): "
                 f"{self.cpu_runtime_derived}",
                 f"shards from before epoch_started was recorded (NaN there): {self.when_unrecorded}; "
                 f"of their tasks, dated by the git commit that added the shard ({SHARD_DATES}): "
                 f"{self.dated_by_commit}",
                 f"diverged tasks (rows kept, status='diverged'): {len(self.diverged_tasks)}",
                 f"failed tasks (no rows; see failures/*.json): {len(self.failed)}"]
        lines += [f"  {k}: {v}" for k, v in list(self.failed.items())[:10]]
        lines.append(f"planned but unfinished tasks: {len(self.unfinished)}")
        if self.gaps:
            lines.append(f"tasks whose epochs are not 1..k: {self.gaps[:10]}")
        return "\n".join(lines)


def merge(run_dirs: list[Path], out: Path | None = None) -> tuple[pd.DataFrame, MergeReport]:
    """Check every shard of ``run_dirs`` and merge them into one table (written to ``out`` when given).

    Args:
        run_dirs: Run folders; each shard is checked against its folder's plan.json where there is one.
        out: The parquet file to write (atomically, zstd), or None.

    Returns:
        ``(table, report)``: rows sorted by (task_id, epoch), duplicate (task_id, epoch) rows dropped; with a
        ``shard_committed`` column when a folder's shard_dates.json dates any shard.

    Raises:
        MergeError: A folder without shards/, shards that fail their checks (each named), folders whose plans
            have different protocols (their rows would not be comparable), or no shard at all.
    """
    rep = MergeReport()
    frames, problems = [], []
    planned: set[str] = set()
    protocols: dict[str, object] = {}
    committed: dict[str, float] = {}
    for rd in map(Path, run_dirs):
        if not (rd / "shards").is_dir():
            raise MergeError(f"{rd} has no shards/ folder: allowed: a run folder that `python -m generation run` "
                             "has worked on")
        if (rd / SHARD_DATES).exists():
            committed.update(read_shard_dates(rd))
        plan = Plan.load(rd) if (rd / "plan.json").exists() else None
        if plan is None:
            rep.without_plan.append(str(rd))
        else:
            planned |= {t.task_id for t in plan.tasks}
            protocols[str(rd)] = plan.protocol
        checks = check_run_shards(rd, {t.task_id: t for t in plan.tasks} if plan else None,
                                  plan.protocol if plan else None)
        rep.shards += len(checks)
        for c in checks:
            if c.ok:
                frames.append(c.frame)
                rep.cpu_runtime_derived += "cpu_runtime" in c.filled
                rep.when_unrecorded += "epoch_started" in c.filled
            else:
                problems.append(f"  {c.path}: {'; '.join(c.problems)}")
        for f in sorted((rd / "failures").glob("*.json")):
            d = json.loads(f.read_text())
            rep.failed[d["task_id"]] = d["error"]
    if len(set(protocols.values())) > 1:
        raise MergeError("the run folders' plans have different protocols, so their rows do not belong in one "
                         "table: " + "; ".join(f"{k}: {v.as_dict()}" for k, v in protocols.items()))
    if problems:
        raise MergeError(f"{len(problems)} of {rep.shards} shard(s) fail their checks; no table written:\n"
                         + "\n".join(problems) + "\n`python -m generation run RUN_DIR` moves such shards to "
                         "shards/rejected/ (with their reasons) and trains their tasks again")
    if not frames:
        raise MergeError(f"no shards under {[str(r) + '/shards' for r in run_dirs]}; run the plan first")
    df = pd.concat(frames, ignore_index=True)
    validate_table(df)
    before = len(df)
    df = df.drop_duplicates(subset=["task_id", "epoch"], keep="first")
    rep.duplicates_dropped = before - len(df)
    df = df.sort_values(["task_id", "epoch"], kind="stable").reset_index(drop=True)
    columns = list(TABLE_COLUMNS)
    if committed:
        undated = df["epoch_started"].isna()
        df["shard_committed"] = df["task_id"].map(committed).where(undated).astype(float)
        rep.dated_by_commit = int(df.loc[df["shard_committed"].notna(), "task_id"].nunique())
        columns += list(OPTIONAL_COLUMNS)
    df = df[columns]
    rep.rows, rep.tasks = len(df), df["task_id"].nunique()
    g = df.groupby("task_id")["epoch"]
    rep.gaps = sorted(t for t, n, mx, mn in zip(g.size().index, g.size(), g.max(), g.min()) if mn != 1 or mx != n)
    rep.diverged_tasks = sorted(df.loc[df["status"] == "diverged", "task_id"].unique())
    rep.failed = {k: v for k, v in rep.failed.items() if k not in set(df["task_id"])}
    rep.unfinished = sorted(planned - set(df["task_id"]) - set(rep.failed))
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        df.to_parquet(tmp, index=False, compression="zstd")
        tmp.replace(out)
    return df, rep


def shard_commit_times(run_dir: Path) -> dict[str, float]:
    """task_id -> Unix time of the git commit that first added its shard (empty outside a git work tree or in
    a clone without that history).

    Args:
        run_dir: The run folder.

    Returns:
        task_id -> Unix time, for the shards git knows.
    """
    shards = (Path(run_dir) / "shards").resolve()
    try:
        out = subprocess.run(["git", "log", "--diff-filter=A", "--format=@%ct", "--name-only", "--", "."],
                             capture_output=True, text=True, cwd=shards, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError):
        return {}
    added, t = {}, 0.0
    for line in out.splitlines():
        if line.startswith("@"):
            t = float(line[1:])
        elif line.endswith(".parquet"):
            added[line.rsplit("/", 1)[-1][: -len(".parquet")]] = t  # git log is newest first: the oldest wins
    return added


def write_shard_dates(run_dir: Path) -> tuple[Path, int, int]:
    """Write ``run_dir/shard_dates.json``: the git commit time of every shard from before ``epoch_started``
    was recorded.

    Args:
        run_dir: The run folder.

    Returns:
        ``(path, shards dated, undated shards git does not know)``.
    """
    run_dir = Path(run_dir)
    old = [f for f in sorted((run_dir / "shards").glob("*.parquet"))
           if "epoch_started" not in pq.read_schema(f).names]
    added = shard_commit_times(run_dir)
    dates = {f.stem: added[f.stem] for f in old if f.stem in added}
    path = run_dir / SHARD_DATES
    path.write_text(json.dumps({"source": "Unix time of the git commit that added the shard (after the task ran; "
                                          "commits landed every 10-60 min)", "shard_committed": dates},
                               indent=0, sort_keys=True) + "\n")
    return path, len(dates), len(old) - len(dates)


def read_shard_dates(run_dir: Path) -> dict[str, float]:
    """Read ``run_dir/shard_dates.json`` (:func:`write_shard_dates`).

    Args:
        run_dir: The run folder.

    Returns:
        task_id -> Unix time of the commit that added its shard.

    Raises:
        ValueError: The file is not a shard-dates file.
    """
    path = Path(run_dir) / SHARD_DATES
    try:
        d = json.loads(path.read_text())["shard_committed"]
        return {str(k): float(v) for k, v in d.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a shard-dates file ({e}); rewrite it with "
                         f"`python -m generation date-shards {run_dir}`") from e


def compute_summary(df: pd.DataFrame, run_dirs: list[Path] | None = None) -> dict:
    """The compute a table cost: core-seconds = each task's cumulative runtime (one core per rank).

    With ``run_dirs``, the machines their runs recorded (``machines.jsonl``) are listed too.

    Args:
        df: The merged table.
        run_dirs: The run folders the table came from, or None.

    Returns:
        ``core_hours``, ``cpu_core_hours``, ``tasks``, up to 10 ``hosts``, ``torch`` versions,
        ``threads_per_rank`` (1, or what machines.jsonl recorded: one value or a list), a ``note`` and, when
        recorded, ``machines``.
    """
    per_task = df.groupby("task_id")["runtime"].max()
    cpu = df.groupby("task_id")["cpu_runtime"].max()
    out = {"core_hours": round(float(per_task.sum()) / 3600, 2), "cpu_core_hours": round(float(cpu.sum()) / 3600, 2),
           "tasks": int(len(per_task)), "hosts": sorted(df["host"].unique().tolist())[:10],
           "torch": sorted(df["torch_version"].unique().tolist()), "threads_per_rank": 1,
           "note": "core_hours: sum over tasks of training + evaluation wall seconds; cpu_core_hours: CPU seconds"}
    machines = []
    for d in run_dirs or []:
        path = Path(d) / "machines.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    m = json.loads(line)
                    key = {k: m.get(k) for k in ("cpu", "logical_cpus", "ranks", "threads_per_rank")}
                    if key not in machines:
                        machines.append(key)
    if machines:
        out["machines"] = machines
        threads = sorted({m["threads_per_rank"] for m in machines})
        out["threads_per_rank"] = threads[0] if len(threads) == 1 else threads
    return out
