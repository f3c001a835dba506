"""Surrogate bundles: a folder per task with XGBoost models (UBJ), an optional table and ``manifest.json``.

The manifest records the format version, task, protocol, encoding, metric bounds and held-out
quality, the package versions that wrote it, a sha256 of every file and of itself. Loading checks
all of it and refuses a bad bundle with one clear message. No pickle anywhere.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from jahs_gym.manifest import (  # noqa: F401  (re-exported: the manifest's home is jahs_gym.manifest)
    _SELF,
    FORMAT_VERSION,
    MAX_MANIFEST_BYTES,
    BundleError,
    Manifest,
    MetricEntry,
    _canonical,
    file_sha256,
    read_manifest,
    write_manifest,
)

DATA_DIR = Path(__file__).with_name("data")


def search_paths() -> list[Path]:
    """Folders searched for bundles: $JAHS_GYM_DATA (os.pathsep-separated) first, then the shipped data."""
    env = os.environ.get("JAHS_GYM_DATA", "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [DATA_DIR]


def installed_tasks() -> dict[str, Path]:
    """task name -> bundle folder, for every folder holding a manifest.json (first found wins)."""
    out: dict[str, Path] = {}
    for root in search_paths():
        if (root / "manifest.json").exists():
            candidates = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.iterdir() if (p / "manifest.json").exists())
        else:
            candidates = []
        for c in candidates:
            out.setdefault(c.name, c)
    return out


def find_bundle(task: str) -> Path:
    tasks = installed_tasks()
    if task not in tasks:
        have = sorted(tasks) or ["(none)"]
        raise KeyError(f"no bundle for task {task!r}; installed: {have} (searched {[str(p) for p in search_paths()]}). "
                       "Make one with `python -m generation plan/run/merge/fit` (README: 'Generate your own "
                       "benchmark') and point JAHS_GYM_DATA at the folder holding it")
    return tasks[task]


class Bundle:
    """A verified bundle; predictors are built lazily and once (per metric subset)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = read_manifest(self.folder)
        self.task: str = self.manifest.task
        self.metrics: tuple[str, ...] = tuple(self.manifest.metrics)

    def __reduce__(self) -> tuple:
        """Pickles carry the folder and the manifest's digest; unpickling re-reads and re-verifies the bundle and
        refuses one that changed since (never a wrong number from another bundle under the same path)."""
        return (_restore_bundle, (str(self.folder), self.manifest.digest))

    def __deepcopy__(self, memo: dict) -> Bundle:
        return self  # verified and read-only

    @property
    def max_epochs(self) -> int:
        return self.manifest.protocol.max_epochs

    @property
    def speed_corrected(self) -> bool:
        """Whether the timing surrogates were fitted on speed-corrected labels (``fit --speed-window`` > 0)."""
        return self.manifest.speed_corrected

    def bounds(self) -> dict[str, tuple[float, float]]:
        """The range each metric showed in the training table (the observation's scale; never an output clip)."""
        return {m: (e.lo, e.hi) for m, e in self.manifest.metrics.items()}

    def output_bounds(self) -> dict[str, tuple[float, float]]:
        """What each metric can physically be (accuracies 0-100, times and sizes >= 0): predictions are clipped
        to these, never to the table's range, which would pile the best predictions up at its maximum."""
        from jahs_gym.metrics import BY_NAME

        return {m: (BY_NAME[m].lo, BY_NAME[m].hi) for m in self.manifest.metrics}

    def transforms(self) -> dict[str, str]:
        return {m: e.transform for m, e in self.manifest.metrics.items()}

    def model_files(self, metrics: tuple[str, ...] | None = None) -> dict[str, Path]:
        metrics = self._check_metrics(metrics)
        return {m: self.folder / self.manifest.metrics[m].file for m in metrics}

    def _check_metrics(self, metrics: Any) -> tuple[str, ...]:
        if metrics is None:
            return self.metrics
        metrics = tuple(metrics)
        bad = [m for m in metrics if m not in self.metrics]
        if bad:
            raise KeyError(f"metric(s) {bad} are not in the {self.task} bundle; available: {list(self.metrics)}")
        return metrics

    def predictor(self, metrics: tuple[str, ...] | None = None, backend: str | None = None) -> Any:
        return _predictor(self.folder, self.manifest.digest, self._check_metrics(metrics), backend)

    def naive_predictor(self, metrics: tuple[str, ...] | None = None) -> Any:
        from jahs_gym.predictor import NaivePredictor

        files = self.model_files(metrics)
        return NaivePredictor(files, self.transforms(), self.output_bounds(), self.linear(tuple(files)))

    def linear(self, metrics: tuple[str, ...]) -> dict[str, tuple[list[int], list[float]]]:
        """metric -> (feature indices, [intercept, coefs]) of the metrics that have a linear base."""
        from jahs_gym.space import FEATURES

        out = {}
        for m in metrics:
            lin = self.manifest.metrics[m].linear
            if lin:
                out[m] = ([FEATURES.index(f) for f in lin.features], list(lin.coef))
        return out

    def table_path(self) -> Path | None:
        f = self.manifest.table.file
        return self.folder / f if f else None

    def speed_factors_path(self) -> Path | None:
        """Per-task speed factors of the shipped table's timings (``generation.fit.write_speed_factors``), if any."""
        f = self.manifest.table.speed_factors
        return self.folder / f if f else None


@functools.lru_cache(maxsize=32)
def _predictor(folder: Path, digest: str, metrics: tuple[str, ...], backend: str | None) -> Any:
    """One ForestPredictor per (bundle, metrics, backend) per process."""
    from jahs_gym.predictor import load_forest
    from jahs_gym.space import N_FEATURES

    b = Bundle(folder)
    bounds, tr = b.output_bounds(), b.transforms()
    return load_forest(b.model_files(metrics), {m: tr[m] for m in metrics}, {m: bounds[m] for m in metrics},
                       N_FEATURES, backend, linear=b.linear(metrics))


def _restore_bundle(folder: str, digest: str) -> Bundle:
    b = load_bundle(folder)
    if b.manifest.digest != digest:
        raise BundleError(f"the bundle in {folder} changed since this object was pickled (manifest digest "
                          f"{b.manifest.digest[:12]} != {digest[:12]}); make the object again from the bundle")
    return b


@functools.lru_cache(maxsize=32)
def load_bundle(task_or_folder: str) -> Bundle:
    """A bundle by task name (searched as :func:`installed_tasks`) or folder path; cached per process."""
    p = Path(task_or_folder)
    if (p / "manifest.json").exists():
        return Bundle(p)
    return Bundle(find_bundle(task_or_folder))
