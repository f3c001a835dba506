"""Train one (config, fidelity, seed) and return one measured row per epoch.

The cosine schedule spans the protocol's ``max_epochs`` whatever the epochs trained, so a run stopped
at epoch k equals the first k epochs of a full run. Randomness is derived from (seed, epoch), and a
checkpoint (``torch.load(..., weights_only=True)``) is written after every epoch, so a killed run
resumes with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import resource
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import jahs_gym
from generation.datasets import TaskData, random_crop_flip, trivial_augment
from generation.network import JAHSNetwork, count_mflops, n_params
from jahs_gym.protocol import N_CLASSES
from jahs_gym.space import Config, fidelity_id, task_id


@dataclass(frozen=True)
class TaskSpec:
    """One unit of work of a plan."""

    task_id: str
    config: Config
    N: int
    W: int
    Resolution: float
    seed: int

    @staticmethod
    def make_id(config: Config, n: int, w: int, resolution: float, seed: int) -> str:
        """The task's id, also its shard's file name (``jahs_gym.space.task_id``).

        Args:
            config: The config.
            n: N of the fidelity.
            w: W of the fidelity.
            resolution: Resolution of the fidelity.
            seed: The training seed.

        Returns:
            ``<config_id>-<fidelity_id>-s<seed>``.
        """
        return task_id(config, n, w, resolution, seed)


def _mix(*xs: int) -> int:
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (x + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def build_model(spec: TaskSpec, data: TaskData) -> JAHSNetwork:
    """The network a task trains.

    Args:
        spec: The task.
        data: Its dataset (channels and classes).

    Returns:
        A freshly initialised network (seed it first for reproducible weights).
    """
    return JAHSNetwork(spec.config, spec.N, spec.W, data.channels, N_CLASSES[data.protocol.task])


def _evaluate(model: torch.nn.Module, data: TaskData, split: str, px: int, batch: int,
              channels_last: bool) -> tuple[float, float, float, float]:
    """(loss, acc %, duration s, forward seconds per image)."""
    x_all, y_all = data.images(split, px), data.labels(split)
    model.eval()
    t0 = time.perf_counter()
    fwd = 0.0
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y_all), batch):
            x = data.normalize(x_all[i:i + batch])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_all[i:i + batch]
            tf = time.perf_counter()
            out = model(x)
            fwd += time.perf_counter() - tf
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
    n = len(y_all)
    return loss_sum / n, 100.0 * correct / n, time.perf_counter() - t0, fwd / n


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def add_epoch_started(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that predate ``epoch_started`` get NaN there (when they ran was not recorded).

    Args:
        rows: A task's rows.

    Returns:
        The rows, each with ``epoch_started``.
    """
    return [r if "epoch_started" in r else {**r, "epoch_started": float("nan")} for r in rows]


def add_cpu_runtime(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``cpu_runtime`` where rows predate it: epoch wall seconds x cpu_percent / 100, accumulated.

    Exact, because cpu_percent was measured over the same window as the epoch's wall seconds.

    Args:
        rows: A task's rows, in epoch order.

    Returns:
        The rows, each with ``cpu_runtime``.
    """
    if not rows or "cpu_runtime" in rows[0]:
        return rows
    out, prev_rt, acc = [], 0.0, 0.0
    for r in rows:
        acc += (r["runtime"] - prev_rt) * r["cpu_percent"] / 100.0
        prev_rt = r["runtime"]
        out.append({**r, "cpu_runtime": acc})
    return out


def _load_checkpoint(path: Path, task_id: str, protocol: dict[str, Any] | None = None) -> dict | None:
    """The checkpoint's state, or None when there is none or it cannot be used (then the task restarts): another
    task's, or one written under another protocol (a plan replaced by hand; checkpoints older than this record
    have no protocol and are taken as they are)."""
    if not path.exists():
        return None
    try:
        # rows of early runs held torch's version as a TorchVersion (a str subclass): allow just that class
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            state = torch.load(path, weights_only=True)
        if state["task_id"] != task_id:
            raise ValueError(f"it belongs to {state['task_id']}")
        if protocol is not None and state.get("protocol", protocol) != protocol:
            raise ValueError(f"it was trained under protocol {state['protocol']}, not {protocol}")
        return state
    except Exception as e:  # corrupted, truncated or foreign: train from scratch, loudly
        warnings.warn(f"checkpoint {path} is unusable ({type(e).__name__}: {str(e)[:200]}); "
                      "training this task from its first epoch", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def train_task(spec: TaskSpec, data: TaskData, epochs: int | None = None, checkpoint: Path | None = None,
               rank: int = 0, channels_last: bool | None = None) -> list[dict[str, Any]]:
    """Train a task; resumable from its checkpoint with the same numbers.

    Args:
        spec: The task.
        data: Its dataset under the plan's protocol.
        epochs: Epochs to train (default: the protocol's max; the cosine schedule always spans the max).
        checkpoint: Per-epoch checkpoint file: a partial run continues from it (an unusable one restarts the
            task with a warning).
        rank: The MPI rank (recorded in the rows).
        channels_last: Train in channels-last memory format (default: on).

    Returns:
        One row per trained epoch with every column of ``jahs_gym.metrics.TABLE_COLUMNS`` (fewer rows if the
        run diverged).

    Raises:
        ValueError: ``epochs`` outside 1..the protocol's max epochs.
    """
    p = data.protocol
    epochs = p.max_epochs if epochs is None else epochs
    if not 1 <= epochs <= p.max_epochs:
        raise ValueError(f"epochs={epochs} must be in 1..{p.max_epochs} (the protocol's max_epochs)")
    px = p.pixels(spec.Resolution)
    if channels_last is None:
        channels_last = True  # on by default; benchmarks/generation_scaling.py part (a) measured it at 0.91-0.98x
    torch.manual_seed(_mix(spec.seed, 0xC0FFEE))
    model = build_model(spec, data)
    mflops = count_mflops(model, data.channels, px)
    nparams = n_params(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cfg = spec.config
    opt = torch.optim.SGD(model.parameters(), lr=cfg.LearningRate, momentum=0.9, nesterov=True,
                          weight_decay=cfg.WeightDecay)
    rows: list[dict[str, Any]] = []
    start_epoch, runtime, cpu_runtime = 0, 0.0, 0.0
    state = _load_checkpoint(checkpoint, spec.task_id, p.as_dict()) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rows, start_epoch, runtime = list(state["rows"]), int(state["epoch"]), float(state["runtime"])
        rows = add_epoch_started(add_cpu_runtime(rows))  # checkpoints written before these columns existed
        cpu_runtime = rows[-1]["cpu_runtime"] if rows else 0.0
        if rows and rows[-1]["status"] != "ok":
            return rows
    x_all, y_all = data.images("train", px), data.labels("train")
    n, bs = len(y_all), p.batch_size
    pad = max(1, round(4 * px / 32))
    ident = {
        "task": p.task, "task_id": spec.task_id, "config_id": cfg.config_id,
        "fidelity_id": fidelity_id(spec.N, spec.W, spec.Resolution), "seed": spec.seed, "rank": rank,
        "host": socket.gethostname(), "torch_version": str(torch.__version__), "jahs_gym_version": jahs_gym.__version__,
        **cfg.as_dict(), "N": spec.N, "W": spec.W, "Resolution": spec.Resolution,
    }
    for epoch in range(start_epoch, epochs):
        lr = cfg.LearningRate * 0.5 * (1 + math.cos(math.pi * epoch / p.max_epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        gen = torch.Generator().manual_seed(_mix(spec.seed, epoch, 1))
        torch.manual_seed(_mix(spec.seed, epoch, 2))
        t_epoch, c_epoch, started = time.perf_counter(), time.process_time(), time.time()
        t_data = t_fwd = t_bwd = 0.0
        loss_sum, correct, seen = 0.0, 0, 0
        status = "ok"
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            t0 = time.perf_counter()
            idx = perm[i:i + bs]
            xb = random_crop_flip(x_all[idx], pad, True, gen)
            if cfg.TrivialAugment:
                xb = trivial_augment(xb)
            xb = data.normalize(xb)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y_all[idx]
            t1 = time.perf_counter()
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            t2 = time.perf_counter()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                status = "diverged"
                t_data, t_fwd = t_data + t1 - t0, t_fwd + t2 - t1
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t3 = time.perf_counter()
            t_data, t_fwd, t_bwd = t_data + t1 - t0, t_fwd + t2 - t1, t_bwd + t3 - t2
            loss_sum += lv * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        train_duration = time.perf_counter() - t_epoch
        vl, va, vd, latency = _evaluate(model, data, "valid", px, bs, channels_last)
        tl, tacc, td, _ = _evaluate(model, data, "test", px, bs, channels_last)
        wall = time.perf_counter() - t_epoch
        cpu = time.process_time() - c_epoch
        runtime += wall
        cpu_runtime += cpu
        nan = float("nan")
        rows.append({
            **ident, "status": status, "epoch": epoch + 1,
            "train_loss": loss_sum / seen if status == "ok" else nan,
            "train_acc": 100.0 * correct / seen if seen else nan, "train_duration": train_duration,
            "valid_loss": vl if math.isfinite(vl) else nan, "valid_acc": va, "valid_duration": vd,
            "test_loss": tl if math.isfinite(tl) else nan, "test_acc": tacc, "test_duration": td,
            "runtime": runtime, "cpu_runtime": cpu_runtime, "latency": latency, "forward_duration": t_fwd,
            "backward_duration": t_bwd,
            "data_load_duration": t_data, "lr": lr,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cpu_percent": 100.0 * cpu / max(wall, 1e-9),
            "FLOPS": mflops, "size_MB": nparams / 1e6, "n_params": float(nparams), "epoch_started": started,
        })
        if checkpoint is not None:
            _atomic_save({"task_id": spec.task_id, "protocol": p.as_dict(), "model": model.state_dict(),
                          "optimizer": opt.state_dict(),
                          "rows": rows, "epoch": epoch + 1, "runtime": runtime}, checkpoint)
        if status != "ok":
            break
    return rows
