"""Run a plan: ``mpiexec -n P python -m generation run RUN_DIR`` (or without mpiexec, one rank).

Scheduling is dynamic, longest tasks first: each rank claims the next task from an MPI one-sided
atomic counter held in rank 0's memory (no coordinator process). A finished task becomes one
parquet shard ``shards/<task_id>.parquet``, written atomically (temp file + rename), so rerunning
the command resumes: finished tasks are skipped and a partial one continues from its checkpoint
``ckpt/<task_id>.pt``. A shard counts as finished only when it passes ``generation.shards.check_shard``
against the plan (readable, the table's schema, all the plan's epochs, its task's ids); any other file in
``shards/`` is moved to ``shards/rejected/`` with its reasons, and its task is trained again. One runner
at a time: rank 0 holds ``run.lock`` (``generation.runlock``) and a second runner is refused.
A task that raises is recorded in ``failures/<task_id>.json`` with its traceback and is tried again
on the next run; the rank goes on. Every start appends the machine it runs on (CPU model, logical
CPUs, ranks, threads) to ``machines.jsonl``, for the data card.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from generation.checks import POSITIVE, Limit
from generation.plan import ORDERS, Plan, PlanError
from generation.runlock import RunLock, RunLocked
from generation.shards import check_run_shards, reject
from jahs_gym.metrics import TABLE_COLUMNS

THREADS = POSITIVE
MAX_TASKS = POSITIVE
TIME_LIMIT = Limit(float, 0, lo_open=True)


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with the table's columns and dtypes (jahs_gym.metrics.TABLE_COLUMNS).

    Args:
        rows: One dict per epoch (:func:`generation.train.train_task`).

    Returns:
        The table's columns only, in its order and dtypes (other keys are left out).

    Raises:
        ValueError: The rows lack a table column.
    """
    df = pd.DataFrame(rows)
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}")
    dtypes = {"int": "int64", "float": "float64", "bool": "bool", "string": "string"}
    return df[list(TABLE_COLUMNS)].astype({c: dtypes[k] for c, k in TABLE_COLUMNS.items()})


def write_atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to a temp file next to ``path``, then rename it: ``path`` is whole or absent.

    Args:
        df: The rows (written without the index).
        path: The parquet file.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class _Counter:
    """Next-task counter: an MPI one-sided atomic fetch-and-add on rank 0's window, or a plain int.

    MPI implementations such as MPICH progress passive-target operations only while the target rank is
    inside an MPI call, and rank 0 spends its time training. So rank 0 runs a tiny thread that pokes
    MPI's progress engine every few milliseconds (``Iprobe`` then sleep): claims are answered within
    milliseconds at no measurable cost, without MPICH's busy-polling async-progress thread.
    """

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.local = 0
        if comm is not None and comm.Get_size() > 1:
            import numpy as np
            from mpi4py import MPI

            self.MPI = MPI
            self.one = np.ones(1, dtype=np.int64)
            self.res = np.zeros(1, dtype=np.int64)
            size = 8 if comm.Get_rank() == 0 else 0
            self.win = MPI.Win.Allocate(size, 8, comm=comm)
            self._stop = threading.Event()
            if comm.Get_rank() == 0:
                self.win.Lock(0)
                self.win.Put(np.zeros(1, dtype=np.int64), 0)
                self.win.Unlock(0)
                if MPI.Query_thread() >= MPI.THREAD_MULTIPLE:
                    threading.Thread(target=self._progress, daemon=True).start()
            comm.Barrier()
        else:
            self.win = None

    def _progress(self) -> None:
        MPI = self.MPI
        while not self._stop.is_set():
            self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
            time.sleep(0.005)

    def next(self) -> int:
        if self.win is None:
            self.local += 1
            return self.local - 1
        MPI = self.MPI
        self.win.Lock(0, MPI.LOCK_SHARED)
        self.win.Fetch_and_op(self.one, self.res, 0, 0, MPI.SUM)
        self.win.Unlock(0)
        return int(self.res[0])

    def free(self) -> None:
        if self.win is not None:
            self._stop.set()
            self.win.Free()


def _comm() -> Any:
    if os.environ.get("JAHS_NO_MPI"):
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


def machine_info() -> dict[str, Any]:
    """This machine: host, CPU model (from /proc/cpuinfo where there is one) and logical CPUs.

    Returns:
        ``host``, ``cpu``, ``logical_cpus`` and ``system``.
    """
    import platform
    import socket

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": socket.gethostname(), "cpu": cpu, "logical_cpus": os.cpu_count(), "system": platform.system()}


def record_machine(run_dir: Path, ranks: int, threads: int) -> dict[str, Any]:
    """Append this start's machine, ranks and threads per rank to ``run_dir/machines.jsonl``.

    Args:
        run_dir: The run folder.
        ranks: MPI ranks of the job.
        threads: Torch threads per rank.

    Returns:
        The entry written: start time, :func:`machine_info`, ranks, threads per rank, torch version.
    """
    import torch

    entry = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), **machine_info(), "ranks": ranks,
             "threads_per_rank": threads, "torch": str(torch.__version__)}
    with open(Path(run_dir) / "machines.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def order_tasks(tasks: list, order: str, configs_done: dict[tuple, int] | None = None, min_configs: int = 20) -> list:
    """The order in which a run works through ``tasks``.

    ``longest``: longest first (best makespan when the whole plan runs at once).

    ``coverage``: first the first-seed tasks (and their repeats) that bring every fidelity up to
    ``min_configs`` configs, counting ``configs_done`` ((N, W, Resolution) -> first seeds already trained),
    in interleaved order; then the rest, interleaved. A run that stops early then still meets the coverage.

    ``cheapest``: cheapest first (``plan-seeds`` extensions: the most second seeds per core-hour).

    ``interleaved``: every prefix of the run has the plan's mix of fidelities (each fidelity's tasks are
    spread evenly over the queue, cheapest first within a fidelity), so a run spread over several sessions
    already covers every fidelity after each session. A repeated seed runs right after its first seed (or
    spread evenly among the repeats when the first seed is done already), so every prefix holds complete
    pairs for the noise model.

    Args:
        tasks: Planned tasks (:class:`generation.planfile.PlannedTask`).
        order: One of :data:`generation.plan.ORDERS`.
        configs_done: ``coverage`` only: (N, W, Resolution) -> first seeds already trained.
        min_configs: ``coverage`` only: the configs every fidelity should reach.

    Returns:
        The tasks, in that order (a new list).

    Raises:
        ValueError: An ``order`` not in ORDERS.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; allowed: {', '.join(map(repr, ORDERS))}")
    if order == "longest":
        return sorted(tasks, key=lambda t: -t.est_seconds)
    if order == "cheapest":
        return sorted(tasks, key=lambda t: (t.est_seconds, t.task_id))
    if order == "coverage":
        have = dict(configs_done or {})
        short: set[tuple] = set()  # (config_id, N, W, Resolution) of the first seeds that close a gap
        for t in sorted(tasks, key=lambda t: (t.est_seconds, t.task_id)):
            fid = (t.N, t.W, t.Resolution)
            if t.seed == 0 and have.get(fid, 0) < min_configs:
                have[fid] = have.get(fid, 0) + 1
                short.add((t.config.config_id, *fid))
        head = [t for t in tasks if (t.config.config_id, t.N, t.W, t.Resolution) in short]
        rest = [t for t in tasks if (t.config.config_id, t.N, t.W, t.Resolution) not in short]
        return order_tasks(head, "interleaved") + order_tasks(rest, "interleaved")
    first = {(t.config.config_id, t.N, t.W, t.Resolution) for t in tasks if t.seed == 0}
    by_fid: dict[tuple, list] = {}
    for t in sorted(tasks, key=lambda t: (t.est_seconds, t.task_id)):
        twin_pending = t.seed > 0 and (t.config.config_id, t.N, t.W, t.Resolution) in first
        if not twin_pending:
            by_fid.setdefault((t.N, t.W, t.Resolution, t.seed > 0), []).append(t)
    at: dict[tuple, float] = {}  # (config_id, N, W, Resolution) -> place of its first seed
    keyed = []
    for fid, q in sorted(by_fid.items()):
        for k, t in enumerate(q):
            keyed.append(((k + 0.5) / len(q), fid, t.seed, t))
            if t.seed == 0:
                at[(t.config.config_id, t.N, t.W, t.Resolution)] = (k + 0.5) / len(q)
    for t in tasks:
        key = (t.config.config_id, t.N, t.W, t.Resolution)
        if t.seed > 0 and key in first:
            keyed.append((at[key], (t.N, t.W, t.Resolution, False), t.seed, t))
    return [t for *_, t in sorted(keyed, key=lambda x: x[:3])]


def run(run_dir: Path, threads: int = 1, time_limit_s: float | None = None, max_tasks: int | None = None,
        data_root: str | None = None, log: Any = None, order: str = "longest") -> dict[str, int]:
    """Work through ``run_dir``'s plan on every rank; returns this rank's counts.

    An error outside a task (a bad plan, missing data) on any rank aborts every rank of the job with
    that rank's message, instead of leaving the others waiting forever. A folder another runner holds is
    refused on every rank (:class:`generation.runlock.RunLocked`).

    Args:
        run_dir: The run folder holding plan.json.
        threads: Torch threads per rank.
        time_limit_s: Stop claiming tasks after this many seconds (a task in progress finishes); None: no limit.
        max_tasks: Run at most this many of the pending tasks, over all ranks; None: all.
        data_root: Folder of a local data copy (:class:`generation.datasets.TaskData`); None: the default.
        log: Called with each progress line; None: print.
        order: One of :data:`generation.plan.ORDERS` (:func:`order_tasks`).

    Returns:
        This rank's ``done``, ``failed`` and ``diverged`` task counts.

    Raises:
        PlanError: A number outside its limit, or a plan :meth:`generation.planfile.Plan.load` refuses.
        RunLocked: Another runner holds the folder.
    """
    THREADS.check("threads", threads, PlanError)
    if time_limit_s is not None:
        TIME_LIMIT.check("time_limit_s", time_limit_s, PlanError)
    if max_tasks is not None:
        MAX_TASKS.check("max_tasks", max_tasks, PlanError)
    comm = _comm()
    try:
        return _run(run_dir, threads, time_limit_s, max_tasks, data_root, log, order, comm)
    except RunLocked:
        raise
    except Exception as e:
        if comm is not None and comm.Get_size() > 1:
            print(f"[rank {comm.Get_rank()}] fatal, aborting every rank: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
            time.sleep(0.5)  # mpiexec stops forwarding output once Abort kills the job: let the message through
            comm.Abort(2)
        raise


def _run(run_dir: Path, threads: int, time_limit_s: float | None, max_tasks: int | None, data_root: str | None,
         log: Any, order: str, comm: Any) -> dict[str, int]:
    """Take the folder's lock on rank 0 (every rank learns whether it got it), then work."""
    run_dir = Path(run_dir)
    rank = comm.Get_rank() if comm is not None else 0
    plan = Plan.load(run_dir)
    lock, refusal = RunLock(run_dir) if rank == 0 else None, None
    if lock is not None:
        try:
            lock.acquire()
        except RunLocked as e:
            refusal = str(e)
    if comm is not None and comm.Get_size() > 1:
        refusal = comm.bcast(refusal, root=0)
    if refusal is not None:
        raise RunLocked(refusal, echo=rank == 0)
    try:
        return _work(run_dir, plan, threads, time_limit_s, max_tasks, data_root, log, order, comm)
    finally:
        if lock is not None:
            lock.release()


def _finished(run_dir: Path, plan: Plan, log: Any) -> set[str]:
    """The ids of the tasks whose shards pass the checks; every other shard is moved to shards/rejected/."""
    t0 = time.time()
    checks = check_run_shards(run_dir, {t.task_id: t for t in plan.tasks}, plan.protocol)
    for c in checks:
        if not c.ok:
            dest = reject(c)
            log(f"[run] {c.path.name} is not a finished run of this plan; moved to {dest.relative_to(run_dir)}, "
                f"its task runs again: {'; '.join(c.problems)}")
    log(f"[run] checked {len(checks)} shard(s) in {time.time() - t0:.1f}s: {sum(c.ok for c in checks)} finished, "
        f"{sum(not c.ok for c in checks)} rejected")
    return {c.path.stem for c in checks if c.ok}


def _work(run_dir: Path, plan: Plan, threads: int, time_limit_s: float | None, max_tasks: int | None,
          data_root: str | None, log: Any, order: str, comm: Any) -> dict[str, int]:
    import torch

    from generation.datasets import TaskData
    from generation.train import TaskSpec, train_task

    log = log or (lambda s: print(s, flush=True))
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    torch.set_num_threads(threads)
    for sub in ("shards", "ckpt", "failures"):
        (run_dir / sub).mkdir(exist_ok=True)
    pending = None
    if rank == 0:
        done = _finished(run_dir, plan, log)
        configs_done: dict[tuple, int] = {}
        for t in plan.tasks:
            if t.seed == 0 and t.task_id in done:
                configs_done[(t.N, t.W, t.Resolution)] = configs_done.get((t.N, t.W, t.Resolution), 0) + 1
        pending = order_tasks([t for t in plan.tasks if t.task_id not in done], order, configs_done,
                              int(plan.options.get("min_per_fidelity", 20)))
        if max_tasks is not None:
            pending = pending[:max_tasks]
        log(f"[run] {len(plan.tasks)} planned, {len(done)} done, {len(pending)} to run on {size} rank(s); "
            f"est {sum(t.est_seconds for t in pending) / 3600:.2f} core-hours")
        data = TaskData(plan.protocol, data_root, split_path=run_dir / "split.npz")  # writes the split once
        if pending:
            record_machine(run_dir, size, threads)
    if comm is not None and size > 1:
        pending = comm.bcast(pending, root=0)
    if rank != 0:
        data = TaskData(plan.protocol, data_root, split_path=run_dir / "split.npz")
    counter = _Counter(comm)
    total_cost = sum(t.est_seconds for t in pending) or 1.0
    prefix = [0.0]
    for t in pending:
        prefix.append(prefix[-1] + t.est_seconds)
    t_start = time.time()
    counts = {"done": 0, "failed": 0, "diverged": 0}
    while True:
        if time_limit_s is not None and time.time() - t_start > time_limit_s:
            log(f"[rank {rank}] time limit {time_limit_s:.0f}s reached; stopping (rerun to resume)")
            break
        i = counter.next()
        if i >= len(pending):
            break
        t = pending[i]
        spec = TaskSpec(t.task_id, t.config, t.N, t.W, t.Resolution, t.seed)
        ckpt = run_dir / "ckpt" / f"{t.task_id}.pt"
        fail = run_dir / "failures" / f"{t.task_id}.json"
        t0 = time.time()
        try:
            rows = train_task(spec, data, checkpoint=ckpt, rank=rank)
            write_atomic_parquet(rows_to_frame(rows), run_dir / "shards" / f"{t.task_id}.parquet")
            ckpt.unlink(missing_ok=True)
            fail.unlink(missing_ok=True)
            counts["done"] += 1
            counts["diverged"] += rows[-1]["status"] == "diverged"
            status = rows[-1]["status"]
        except Exception as e:  # recorded, and the rank goes on
            counts["failed"] += 1
            status = f"FAILED ({type(e).__name__}: {e})"
            tmp = fail.with_suffix(".tmp")
            tmp.write_text(json.dumps({"task_id": t.task_id, "rank": rank, "error": repr(e),
                                       "traceback": traceback.format_exc(), "time": time.time()}, indent=1))
            os.replace(tmp, fail)
        elapsed = time.time() - t_start
        frac = prefix[i + 1] / total_cost
        eta = elapsed * (1 - frac) / max(frac, 1e-9)
        log(f"[rank {rank}] {i + 1}/{len(pending)} {t.task_id} {status} in {time.time() - t0:.1f}s "
            f"(est {t.est_seconds:.0f}s); ~{frac:.1%} of work claimed, ETA {eta / 3600:.2f} h")
    totals = counts["done"]
    if comm is not None and size > 1:
        comm.Barrier()
        totals = comm.reduce(counts["done"], root=0)
    if rank == 0:
        log(f"[run] finished: {totals} tasks done by {size} ranks in {time.time() - t_start:.1f}s")
    counter.free()
    return counts
