"""Surrogate bundles: a folder per task with XGBoost models (UBJ), an optional table and ``manifest.json``.

The manifest records the format version, task, protocol, encoding, metric bounds and held-out
quality, the package versions that wrote it, a sha256 of every file and of itself. Loading checks
all of it and refuses a bad bundle with one clear message. No pickle anywhere. A bundle folder is
untrusted input (``JAHS_GYM_DATA`` points at user folders): nothing outside it is read, it holds only
listed files, and a model is parsed from the bytes whose sha256 was checked (``jahs_gym.bundle_trust``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from jahs_gym.bundle_trust import file_sha256, read_listed  # noqa: F401  (re-exported)
from jahs_gym.manifest import (  # noqa: F401  (re-exported: the manifest's home is jahs_gym.manifest)
    _SELF,
    FORMAT_VERSION,
    BundleError,
    Manifest,
    MetricEntry,
)
from jahs_gym.manifest_file import (  # noqa: F401  (re-exported: reading and writing it, jahs_gym.manifest_file)
    MAX_MANIFEST_BYTES,
    _canonical,
    read_manifest,
    refit_hint,
    write_manifest,
)

DATA_DIR = Path(__file__).with_name("data")


def search_paths() -> list[Path]:
    """Folders searched for bundles: $JAHS_GYM_DATA (os.pathsep-separated) first, then the shipped data.

    Returns:
        The folders, in search order.
    """
    env = os.environ.get("JAHS_GYM_DATA", "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [DATA_DIR]


def installed_tasks() -> dict[str, Path]:
    """task name -> bundle folder, for every folder holding a manifest.json (first found wins).

    A search path is a bundle itself when it holds a manifest.json, else its subfolders that hold one are.

    Returns:
        Task name (the folder's name) -> folder.
    """
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
    """The folder of an installed task's bundle.

    Args:
        task: The task name.

    Returns:
        Its folder (the first in :func:`search_paths` order).

    Raises:
        KeyError: No installed bundle has that name (the message lists those installed and how to make one).
    """
    tasks = installed_tasks()
    if task not in tasks:
        have = sorted(tasks) or ["(none)"]
        raise KeyError(f"no bundle for task {task!r}; installed: {have} (searched {[str(p) for p in search_paths()]}). "
                       "Make one with `python -m generation plan/run/merge/fit` (README: 'Generate your own "
                       "benchmark') and point JAHS_GYM_DATA at the folder holding it")
    return tasks[task]


class Bundle:
    """A verified bundle; predictors are built lazily and once (per metric subset).

    Args:
        folder: The bundle folder.
        _manifest: Its manifest, already read and verified by the caller; None to read and verify it here.
    """

    def __init__(self, folder: Path | str, _manifest: Manifest | None = None) -> None:
        self.folder = Path(folder)
        # ``_manifest``: read by the caller (the predictor cache, which checks its digest and hashes each model)
        self.manifest: Manifest = read_manifest(self.folder) if _manifest is None else _manifest
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
        """The protocol's max epoch count."""
        return self.manifest.protocol.max_epochs

    @property
    def speed_corrected(self) -> bool:
        """Whether the timing surrogates were fitted on speed-corrected labels (``fit --speed-window`` > 0)."""
        return self.manifest.speed_corrected

    def bounds(self) -> dict[str, tuple[float, float]]:
        """The range each metric showed in the training table (the observation's scale; never an output clip).

        Returns:
            Metric -> (lo, hi).
        """
        return {m: (e.lo, e.hi) for m, e in self.manifest.metrics.items()}

    def output_bounds(self) -> dict[str, tuple[float, float]]:
        """What each metric can physically be (accuracies 0-100, times and sizes >= 0): predictions are clipped
        to these, never to the table's range, which would pile the best predictions up at its maximum.

        Returns:
            Metric -> (lo, hi) of the metric schema.
        """
        from jahs_gym.metrics import BY_NAME

        return {m: (BY_NAME[m].lo, BY_NAME[m].hi) for m in self.manifest.metrics}

    def transforms(self) -> dict[str, str]:
        """Each metric's fitted transform.

        Returns:
            Metric -> "none", "log" or "log1p".
        """
        return {m: e.transform for m, e in self.manifest.metrics.items()}

    def model_files(self, metrics: tuple[str, ...] | None = None) -> dict[str, Path]:
        """The model files' paths (not read, not hashed).

        Args:
            metrics: Some of the bundle's metrics (KeyError for another); None for all.

        Returns:
            Metric -> path.
        """
        metrics = self._check_metrics(metrics)
        return {m: self.folder / self.manifest.metrics[m].file for m in metrics}

    def read_file(self, rel: str) -> bytes:
        """A listed file's bytes, hashed as read: BundleError when they are not what the manifest lists.

        Args:
            rel: The file's path in the manifest's listing.

        Returns:
            The bytes.
        """
        return read_listed(self.folder, self.manifest.files, rel, refit_hint(self.folder))

    def model_bytes(self, metrics: tuple[str, ...] | None = None) -> dict[str, bytes]:
        """metric -> its model file's bytes (checked against the manifest's sha256).

        Args:
            metrics: Some of the bundle's metrics (KeyError for another); None for all.

        Returns:
            Metric -> bytes.
        """
        return {m: self.read_file(self.manifest.metrics[m].file) for m in self._check_metrics(metrics)}

    def _check_metrics(self, metrics: Any) -> tuple[str, ...]:
        if metrics is None:
            return self.metrics
        metrics = tuple(metrics)
        bad = [m for m in metrics if m not in self.metrics]
        if bad:
            raise KeyError(f"metric(s) {bad} are not in the {self.task} bundle; available: {list(self.metrics)}")
        return metrics

    def predictor(self, metrics: tuple[str, ...] | None = None, backend: str | None = None) -> Any:
        """The :class:`~jahs_gym.predictor.ForestPredictor` of ``metrics``, built once per process and shared.

        Args:
            metrics: Some of the bundle's metrics (KeyError for another); None for all.
            backend: "c", "numpy", or None for the default.

        Returns:
            The predictor (BundleError when a model is not one jahs-gym reads or the bundle changed).
        """
        return _predictor(self.folder, self.manifest.digest, self._check_metrics(metrics), backend)

    def naive_predictor(self, metrics: tuple[str, ...] | None = None) -> Any:
        """A :class:`~jahs_gym.predictor.NaivePredictor` (one XGBoost model per metric); needs xgboost.

        Args:
            metrics: Some of the bundle's metrics (KeyError for another); None for all.

        Returns:
            A new predictor.
        """
        from jahs_gym.predictor import NaivePredictor

        models = self.model_bytes(metrics)
        return NaivePredictor(models, self.transforms(), self.output_bounds(), self.linear(tuple(models)))

    def linear(self, metrics: tuple[str, ...]) -> dict[str, tuple[list[int], list[float]]]:
        """metric -> (feature indices, [intercept, coefs]) of the metrics that have a linear base.

        Args:
            metrics: The metrics to look at.

        Returns:
            Only those of ``metrics`` that have a linear base.
        """
        from jahs_gym.space import FEATURES

        out = {}
        for m in metrics:
            lin = self.manifest.metrics[m].linear
            if lin:
                out[m] = ([FEATURES.index(f) for f in lin.features], list(lin.coef))
        return out

    def table_path(self) -> Path | None:
        """The shipped table's path (``fit --ship-table``), if any.

        Returns:
            The path, or None when the bundle ships no table.
        """
        f = self.manifest.table.file
        return self.folder / f if f else None

    def speed_factors_path(self) -> Path | None:
        """Per-task speed factors of the shipped table's timings (``generation.fit.write_speed_factors``), if any.

        Returns:
            The path, or None.
        """
        f = self.manifest.table.speed_factors
        return self.folder / f if f else None


@functools.lru_cache(maxsize=32)
def _predictor(folder: Path, digest: str, metrics: tuple[str, ...], backend: str | None) -> Any:
    """One ForestPredictor per (bundle, metrics, backend) per process: built from the manifest of ``digest``
    and the model bytes it lists (each hashed as read), every tree checked (``xgb_model.layout_tree``)."""
    from jahs_gym.predictor import ForestPredictor, ModelError, parse_booster_json, read_booster_json
    from jahs_gym.space import N_FEATURES

    b = Bundle(folder, read_manifest(folder, verify_files=False))
    if b.manifest.digest != digest:
        raise BundleError(f"the bundle in {folder} changed since it was loaded (manifest digest "
                          f"{b.manifest.digest[:12]} != {digest[:12]}); load it again")
    docs = {}
    for m, raw in b.model_bytes(metrics).items():
        e = b.manifest.metrics[m]
        try:
            docs[m] = read_booster_json(raw)
            n = len(parse_booster_json(docs[m])[1])
        except (ValueError, KeyError, TypeError) as err:  # XGBoostError, ModelError are ValueErrors
            raise BundleError(f"{folder}: {e.file} is not a model jahs-gym reads ({str(err).splitlines()[0]}); "
                              f"{refit_hint(folder)}") from None
        if n != e.n_trees:
            raise BundleError(f"{folder}: {e.file} has {n} trees, its manifest says n_trees {e.n_trees} (another "
                              f"model under this name?); {refit_hint(folder)}")
    bounds, tr = b.output_bounds(), b.transforms()
    try:
        return ForestPredictor(docs, {m: tr[m] for m in metrics}, {m: bounds[m] for m in metrics}, N_FEATURES,
                               backend, linear=b.linear(metrics),
                               depth_limit={m: b.manifest.metrics[m].max_depth for m in metrics})
    except ModelError as err:  # a tree that is not a proper tree (a cycle, too deep, ...)
        raise BundleError(f"{folder}: {err}; {refit_hint(folder)}") from None


def _restore_bundle(folder: str, digest: str) -> Bundle:
    b = load_bundle(folder)
    if b.manifest.digest != digest:
        raise BundleError(f"the bundle in {folder} changed since this object was pickled (manifest digest "
                          f"{b.manifest.digest[:12]} != {digest[:12]}); make the object again from the bundle")
    return b


@functools.lru_cache(maxsize=32)
def load_bundle(task_or_folder: str) -> Bundle:
    """A bundle by task name (searched as :func:`installed_tasks`) or folder path; cached per process.

    Args:
        task_or_folder: A task name, or a folder holding a manifest.json.

    Returns:
        The verified bundle (KeyError for an unknown task, BundleError for a bad bundle).
    """
    p = Path(task_or_folder)
    if (p / "manifest.json").exists():
        return Bundle(p)
    return Bundle(find_bundle(task_or_folder))
