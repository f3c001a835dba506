"""The plan a run folder holds (plan.json): its tasks, how it is written and read, and the guard that keeps a
folder from mixing the shards of two plans.

:mod:`generation.plan` makes plans (and re-exports these names); this module only stores them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jahs_gym.protocol import Protocol
from jahs_gym.space import Config, Fidelity, SpaceError

PLAN_FORMAT = 1


class PlanError(ValueError):
    """A plan file or plan request that cannot be run."""


@dataclass(frozen=True)
class PlannedTask:
    """One task: ``config`` trained at (N, W, Resolution) with ``seed``; ``mflops`` and ``est_seconds`` are the
    cost model's."""

    task_id: str
    config: Config
    N: int
    W: int
    Resolution: float
    seed: int
    mflops: float
    est_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The task as plan.json holds it.

        Returns:
            The fields by name, the config as its dict.
        """
        return {"task_id": self.task_id, "config": self.config.as_dict(), "N": self.N, "W": self.W,
                "Resolution": self.Resolution, "seed": self.seed, "mflops": self.mflops,
                "est_seconds": self.est_seconds}


@dataclass(frozen=True)
class Plan:
    """A run folder's plan (plan.json): the protocol, the tasks, the seed that drew them and the options used."""

    protocol: Protocol
    tasks: tuple[PlannedTask, ...]
    seed: int
    options: dict[str, Any]

    @property
    def core_hours(self) -> float:
        """The tasks' estimated seconds, summed, in hours."""
        return sum(t.est_seconds for t in self.tasks) / 3600

    def identity(self) -> tuple:
        """What the plan trains: its protocol and its tasks (id, config, fidelity, seed), in task-id order.

        Returns:
            ``(protocol, task tuples)``: equal for two plans that train the same runs.
        """
        return self.protocol, tuple(sorted((t.task_id, t.config, t.N, t.W, t.Resolution, t.seed)
                                           for t in self.tasks))

    def save(self, run_dir: Path, extends: bool = False) -> Path:
        """Write ``run_dir/plan.json``; a folder that holds a plan keeps it.

        The same plan again (same protocol and tasks) leaves the file as it is; another plan is refused, since
        ``run`` would count the old plan's shards as done. ``extends``: this plan keeps the old one's protocol
        and tasks and adds tasks (``plan-seeds``). A folder with shards but no plan.json is refused too.

        Args:
            run_dir: The run folder (made if missing).
            extends: Whether this plan may extend the plan the folder holds.

        Returns:
            The path of plan.json.

        Raises:
            PlanError: The folder holds another plan (or, from :func:`plan_target`, is a file or holds shards
                without a plan).
        """
        run_dir = Path(run_dir)
        old = plan_target(run_dir)
        path = run_dir / "plan.json"
        if old is not None:
            if old.identity() == self.identity():
                return path
            if not (extends and old.protocol == self.protocol and self.tasks[:len(old.tasks)] == old.tasks):
                raise PlanError(f"{run_dir} already holds another plan ({_difference(old, self)}); its shards would "
                                f"count as done for this one. Plan into a new folder (e.g. {run_dir}_2), or "
                                "run the plan that is there")
        run_dir.mkdir(parents=True, exist_ok=True)
        doc = {"format": PLAN_FORMAT, "protocol": self.protocol.as_dict(), "seed": self.seed,
               "options": self.options, "est_core_hours": self.core_hours,
               "tasks": [t.as_dict() for t in self.tasks]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=0))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, run_dir: Path) -> Plan:
        """Read ``run_dir/plan.json``.

        Args:
            run_dir: The run folder.

        Returns:
            The plan.

        Raises:
            PlanError: No plan.json, invalid JSON, another format, a bad protocol, a task whose config or
                fidelity is refused, or a task id twice.
        """
        path = Path(run_dir) / "plan.json"
        if not path.exists():
            raise PlanError(f"{path} does not exist; make one with `python -m generation plan --out {run_dir}`")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise PlanError(f"{path} is not valid JSON ({e})") from e
        if doc.get("format") != PLAN_FORMAT:
            raise PlanError(f"{path}: plan format {doc.get('format')!r} is not supported (expected {PLAN_FORMAT})")
        try:
            protocol = Protocol.from_dict(doc["protocol"])
        except (ValueError, TypeError) as e:
            raise PlanError(f"{path}: bad protocol: {e}") from e
        tasks, seen = [], set()
        for i, t in enumerate(doc["tasks"]):
            try:
                cfg = Config.from_dict(t["config"])
                fid = Fidelity(t["N"], t["W"], t["Resolution"])
            except (SpaceError, KeyError, TypeError) as e:
                raise PlanError(f"{path}: task {i} ({t.get('task_id', '?')}) is refused: {e}") from e
            if t["task_id"] in seen:
                raise PlanError(f"{path}: task id {t['task_id']} appears twice")
            seen.add(t["task_id"])
            tasks.append(PlannedTask(t["task_id"], cfg, fid.N, fid.W, fid.Resolution, int(t["seed"]),
                                     float(t["mflops"]), float(t["est_seconds"])))
        return cls(protocol, tuple(tasks), int(doc["seed"]), doc.get("options", {}))


def plan_target(run_dir: Path) -> Plan | None:
    """The plan a folder already holds; refuses a file, or shards without a plan.

    Args:
        run_dir: The run folder, existing or not.

    Returns:
        Its plan, or None for a new folder or one without plan.json and shards.

    Raises:
        PlanError: ``run_dir`` is a file, or its shards/ holds shards but it has no plan.json.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise PlanError(f"{run_dir} is a file; allowed: a run folder, new or holding this same plan")
    if (run_dir / "plan.json").exists():
        return Plan.load(run_dir)
    if any((run_dir / "shards").glob("*.parquet")):
        raise PlanError(f"{run_dir}/shards holds shards but {run_dir} has no plan.json: they are runs of an "
                        "unknown plan. Plan into a new folder")
    return None


def _difference(old: Plan, new: Plan) -> str:
    """How two plans differ, in a few words: protocol fields, tasks only in one of them."""
    a, b = old.protocol.as_dict(), new.protocol.as_dict()
    parts = [f"{k} {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]
    ids_a, ids_b = {t[0] for t in old.identity()[1]}, {t[0] for t in new.identity()[1]}
    same_id_changed = len(ids_a & ids_b) - len(set(old.identity()[1]) & set(new.identity()[1]))
    if ids_a != ids_b:
        parts.append(f"{len(ids_a)} -> {len(ids_b)} tasks, {len(ids_a - ids_b)} only in the old plan, "
                     f"{len(ids_b - ids_a)} only in the new one")
    if same_id_changed:
        parts.append(f"{same_id_changed} task(s) with the same id but another config or fidelity")
    return "; ".join(parts) or "other tasks"
