"""One runner per run folder: an exclusive ``fcntl.flock`` on ``RUN_DIR/run.lock``.

Two runners on one folder would train every task twice. The operating system drops the lock when its
holder's process ends, however it ends (kill -9 included), so a killed run never leaves a stale lock
behind. Under mpiexec, rank 0 holds it for the whole job and the other ranks follow rank 0.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO

from generation.plan import PlanError

LOCK_FILE = "run.lock"


class RunLocked(PlanError):
    """Another process runs this folder. ``echo``: False on the MPI ranks that are not rank 0 (one message)."""

    def __init__(self, message: str, echo: bool = True) -> None:
        """A refusal to run a folder another runner holds.

        Args:
            message: Who holds the folder, and what to do.
            echo: Whether this process prints the refusal.
        """
        super().__init__(message)
        self.echo = echo


class RunLock:
    """``with RunLock(run_dir):`` holds the folder's lock, or raises :class:`RunLocked` naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        """The lock of a run folder (not taken yet).

        Args:
            run_dir: The run folder; the lock is its ``run.lock``.
        """
        self.path = Path(run_dir) / LOCK_FILE
        self._f: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Take the lock (without waiting) and write this process's pid, host, start time and command into it.

        Returns:
            This lock, held.

        Raises:
            RunLocked: Another open file holds it (another runner), naming that runner.
        """
        f = open(self.path, "a+")  # noqa: SIM115 -- held open for as long as the lock is held
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held by another open file (another process, or this one twice)
            f.seek(0)
            text = f.read()
            f.close()
            try:
                h = json.loads(text)
                who = f"pid {h['pid']} on {h['host']} since {h['started']} ({' '.join(h['argv'])})"
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise RunLocked(f"{self.path.parent} is being run by {who}: it holds {self.path}, and a second runner "
                            "would train every task twice. Wait for it to end or stop it (a runner that is "
                            "killed releases the lock by itself), then rerun to resume") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv}) + "\n")
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        """Let the lock go (the file stays; the next runner overwrites its contents)."""
        if self._f is not None:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
