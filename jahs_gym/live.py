"""Real training on demand: the runs behind ``Benchmark(kind="live")`` and JAHS-v0's ``backend="live"``.

A query for (config, fidelity, epochs) is answered from the live folder ``save_dir/<task>/`` when that folder
holds the run that far; otherwise ``python -m generation.live`` trains it there, under the bundle's protocol
(its images, split seed and max epochs), and the answer is the measured learning curve. The worker is a
subprocess, so jahs_gym imports neither torch nor ``generation``; it needs the ``generation`` extra and the
task's dataset installed, and says how to get either when one is missing.

The folder is laid out like a run folder of ``python -m generation run`` (``protocol.json``, ``split.npz``,
``shards/``, ``ckpt/``): runs survive the process, a later query for more epochs continues a run from its
checkpoint, and a folder made under another protocol is refused. Timings are those measured on this machine
(``timings="measured"``), and every run uses one seed (``seed``, default 0).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from jahs_gym.space import Config, Fidelity, task_id

LIVE_PROTOCOL_FILE = "protocol.json"


class LiveError(RuntimeError):
    """Live training could not run; the message says why and how to fix it."""


class LiveRuns:
    """The live runs of one task in ``save_dir/<task>``, trained on demand under ``protocol``.

    Args:
        task: The task's name (the dataset); the live folder is ``save_dir/<task>``.
        protocol: The bundle's protocol (:class:`jahs_gym.protocol.Protocol` fields) every run trains under.
        save_dir: The folder that keeps the live runs.
        seed: The seed of every run (the tables' first seed is 0).
        threads: Torch threads of the training worker.
        data_root: The dataset's folder (default: the installed dataset).

    Raises:
        ValueError: No ``save_dir``, or a seed or thread count that is not allowed.
        LiveError: torch, torchvision or ``generation`` is not installed (the message gives the pip command).
    """

    def __init__(self, task: str, protocol: dict[str, Any], save_dir: Path | str, seed: int = 0, threads: int = 1,
                 data_root: str | None = None) -> None:
        if save_dir is None:
            raise ValueError("live runs (Benchmark kind='live', JAHS-v0 backend='live') need save_dir=FOLDER: "
                             "they are trained and kept there")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"live seed={seed!r} is not allowed; allowed: an integer >= 0")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"live threads={threads!r} is not allowed; allowed: an integer >= 1")
        missing = [m for m in ("torch", "torchvision", "generation") if importlib.util.find_spec(m) is None]
        if missing:
            raise LiveError(f"live runs train for real and needs {missing}: "
                            "`pip install 'jahs-gym[generation]'` (from a clone: `pip install -e '.[generation]'`)")
        self.task, self.protocol, self.seed, self.threads = task, dict(protocol), seed, threads
        self.max_epochs = int(self.protocol["max_epochs"])
        self.folder = Path(save_dir) / task
        self.data_root = data_root
        self.trained = 0  # runs this object had the worker train or continue

    def shard(self, config: Config, fidelity: Fidelity) -> Path:
        """The shard of a run (trained or not).

        Args:
            config: The run's config.
            fidelity: Its fidelity (the epoch does not matter: one shard holds every epoch trained).

        Returns:
            ``save_dir/<task>/shards/<task_id>.parquet``.
        """
        tid = task_id(config, fidelity.N, fidelity.W, fidelity.Resolution, self.seed)
        return self.folder / "shards" / f"{tid}.parquet"

    def _read(self, path: Path) -> pd.DataFrame:
        try:
            return pd.read_parquet(path)
        except Exception as e:  # a truncated or foreign file in a user's folder
            raise LiveError(f"live shard {path} is unreadable ({type(e).__name__}: {e}); delete it to retrain "
                            "the run") from None

    def curve(self, config: Config, fidelity: Fidelity) -> pd.DataFrame:
        """Measured rows of epochs 1..``fidelity.epoch`` (fewer if the run diverged), training what is missing.

        Args:
            config: The run's config.
            fidelity: Its N, W, Resolution and the epochs wanted.

        Returns:
            The run's rows (the table's columns) up to ``fidelity.epoch``, sorted by epoch.

        Raises:
            SpaceError: ``fidelity.epoch`` above the protocol's max epochs.
            LiveError: The worker failed (its last line of output says why) or a shard is unreadable.
        """
        fidelity.check_epoch(self.max_epochs)
        path = self.shard(config, fidelity)
        df = self._read(path) if path.exists() else None
        if df is None or (df["epoch"].max() < fidelity.epoch and (df["status"] == "ok").all()):
            self._train(config, fidelity)
            df = self._read(path)
        return df[df["epoch"] <= fidelity.epoch].sort_values("epoch").reset_index(drop=True)

    def _train(self, config: Config, fidelity: Fidelity) -> None:
        cmd = [sys.executable, "-m", "generation.live", str(self.folder), "--protocol", json.dumps(self.protocol),
               "--config", json.dumps(config.as_dict()), "--fidelity", str(fidelity.N), str(fidelity.W),
               str(fidelity.Resolution), "--epochs", str(fidelity.epoch), "--seed", str(self.seed),
               "--threads", str(self.threads)]
        if self.data_root is not None:
            cmd += ["--data-root", str(self.data_root)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise LiveError(f"live training of {config.config_id} at {fidelity.fidelity_id}, {fidelity.epoch} "
                            f"epoch(s) failed (exit {done.returncode}): {tail}")
        self.trained += 1
