"""Train one run for real into a live folder: the worker behind ``Benchmark(kind="live")`` and JAHS-v0's
``backend="live"``.

    python -m generation.live FOLDER --protocol '{"task": "fashion_mnist", ...}' \\
        --config '{"Op1": 0, ..., "WeightDecay": 5e-4}' --fidelity 1 4 0.25 --epochs 3

FOLDER (``save_dir/<task>`` of the query API) is laid out like a run folder of ``python -m generation run``:
``protocol.json`` (written once; a folder made under another protocol is refused), ``split.npz`` (the
validation split, made once from the protocol's split seed), ``shards/<task_id>.parquet`` (every epoch trained so
far, written atomically) and ``ckpt/<task_id>.pt`` (kept until the protocol's last epoch, so a later query for
more epochs continues the run: the cosine schedule spans the protocol's max epochs, so a run stopped at epoch k
is the first k epochs of the full run). A per-run lock (``fcntl.flock``, released by the OS if the worker dies)
makes two queries for the same run train it once. On success the shard's path is printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from jahs_gym.live import LIVE_PROTOCOL_FILE
from jahs_gym.protocol import Protocol
from jahs_gym.space import Config, Fidelity, task_id


def _claim_protocol(folder: Path, protocol: Protocol) -> None:
    """Write ``protocol.json`` once; refuse a folder whose runs were trained under another protocol."""
    path = folder / LIVE_PROTOCOL_FILE
    want = protocol.as_dict()
    if path.exists():
        have = json.loads(path.read_text())
        if have != want:
            raise SystemExit(f"live folder {folder} holds runs trained under protocol {have}, not {want}; "
                             "use another save_dir for this bundle")
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(want, indent=1, sort_keys=True))
    tmp.replace(path)


def trained_epochs(shard: Path) -> tuple[int, bool]:
    """What a live shard holds.

    Args:
        shard: The shard's path (it may not exist yet).

    Returns:
        (the last epoch trained, 0 when there is no shard; whether the run diverged).
    """
    if not shard.exists():
        return 0, False
    df = pd.read_parquet(shard, columns=["epoch", "status"])
    return int(df["epoch"].max()), bool((df["status"] != "ok").any())


def train_live(folder: Path, protocol: Protocol, config: Config, fidelity: Fidelity, epochs: int, seed: int = 0,
               threads: int = 1, data_root: str | None = None) -> Path:
    """Train (or continue) one run in ``folder`` up to ``epochs``; a run that holds them already is left alone.

    Args:
        folder: The live folder of the task.
        protocol: The protocol to train under (the folder's ``protocol.json`` must match it).
        config: The run's config.
        fidelity: The run's N, W and Resolution.
        epochs: Train up to this epoch (1..``protocol.max_epochs``).
        seed: The run's seed.
        threads: Torch threads.
        data_root: The dataset's folder (default: the installed dataset).

    Returns:
        The shard's path.

    Raises:
        SystemExit: ``epochs`` out of range, or the folder holds runs of another protocol.
    """
    import torch

    from generation.datasets import TaskData
    from generation.run import rows_to_frame, write_atomic_parquet
    from generation.train import TaskSpec, train_task

    if not 1 <= epochs <= protocol.max_epochs:
        raise SystemExit(f"epochs={epochs} is not allowed; allowed: 1..{protocol.max_epochs} (the protocol's "
                         "max_epochs)")
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("shards", "ckpt"):
        (folder / sub).mkdir(exist_ok=True)
    _claim_protocol(folder, protocol)
    tid = task_id(config, fidelity.N, fidelity.W, fidelity.Resolution, seed)
    shard, ckpt = folder / "shards" / f"{tid}.parquet", folder / "ckpt" / f"{tid}.pt"
    with open(folder / "ckpt" / f"{tid}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second query for this run waits, then finds it trained
        have, ended = trained_epochs(shard)
        if have >= epochs or ended:
            return shard
        torch.set_num_threads(threads)
        data = TaskData(protocol, data_root, split_path=folder / "split.npz")
        spec = TaskSpec(tid, config, fidelity.N, fidelity.W, fidelity.Resolution, seed)
        rows = train_task(spec, data, epochs=epochs, checkpoint=ckpt)
        write_atomic_parquet(rows_to_frame(rows), shard)
        if rows[-1]["epoch"] >= protocol.max_epochs or rows[-1]["status"] != "ok":
            ckpt.unlink(missing_ok=True)
    return shard


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module's docstring); prints ``{"shard": PATH}`` as JSON.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: Bad arguments (exit 2), or training that cannot run (the dataset is missing, another protocol).
    """
    ap = argparse.ArgumentParser(prog="python -m generation.live", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="the live folder of one task (save_dir/<task>)")
    ap.add_argument("--protocol", type=_json_arg, required=True, help="the bundle's protocol as JSON")
    ap.add_argument("--config", type=_json_arg, required=True, help="the 11 config keys as JSON")
    ap.add_argument("--fidelity", nargs=3, metavar=("N", "W", "RESOLUTION"), required=True,
                    help="cells per stage, first-stage width, resolution fraction")
    ap.add_argument("--epochs", type=int, required=True, help="train up to this epoch (1..protocol max_epochs)")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (default 0, as the tables' first seed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--data-root", default=None, help="dataset folder (default: the installed dataset)")
    a = ap.parse_args(argv)
    if a.seed < 0 or a.threads < 1:
        ap.error(f"--seed must be >= 0 and --threads >= 1 (got {a.seed}, {a.threads})")
    try:
        protocol = Protocol.from_dict(a.protocol)
        config = Config.from_dict(a.config)
        fidelity = Fidelity(int(a.fidelity[0]), int(a.fidelity[1]), float(a.fidelity[2]), a.epochs)
    except (ValueError, TypeError) as e:
        ap.error(str(e))
    from generation.datasets import DataError

    try:
        shard = train_live(a.folder, protocol, config, fidelity, a.epochs, a.seed, a.threads, a.data_root)
    except DataError as e:
        raise SystemExit(f"live training cannot run: {e}") from None
    print(json.dumps({"shard": str(shard)}))


if __name__ == "__main__":
    sys.exit(main())
