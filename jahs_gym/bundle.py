"""Surrogate bundles: a folder per task with XGBoost models (UBJ), an optional table and ``manifest.json``.

The manifest records the format version, task, protocol, encoding, metric bounds and held-out
quality, the package versions that wrote it, a sha256 of every file and of itself. Loading checks
all of it and refuses a bad bundle with one clear message. No pickle anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
DATA_DIR = Path(__file__).with_name("data")
_SELF = "manifest_sha256"


class BundleError(RuntimeError):
    """A bundle that is missing, corrupted or of another format."""


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(manifest: dict) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k != _SELF}, sort_keys=True).encode()


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Add the sha256 of every file in ``folder`` (except the manifest) and of the manifest itself."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = dict(manifest)
    manifest["files"] = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    manifest[_SELF] = hashlib.sha256(_canonical(manifest)).hexdigest()
    path = folder / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path | str, verify_files: bool = True) -> dict:
    """Read and verify a bundle's manifest; raise :class:`BundleError` naming the first problem."""
    from jahs_gym.space import ENCODING, FEATURES

    folder = Path(folder)
    path = folder / "manifest.json"
    fix = (f"reinstall jahs-gym (pip install --force-reinstall jahs-gym) or refit the bundle with "
           f"`python -m generation fit TABLE -o {folder}`")
    if not path.exists():
        raise BundleError(f"{folder} is not a bundle: manifest.json is missing; {fix}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} is not a JSON object; {fix}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {manifest.get('format_version')!r} is not supported "
                          f"(this jahs-gym reads {FORMAT_VERSION}); {fix}")
    if manifest.get(_SELF) != hashlib.sha256(_canonical(manifest)).hexdigest():
        raise BundleError(f"{path} was modified after it was written (its {_SELF} does not match); {fix}")
    enc = manifest.get("encoding", {})
    if enc.get("name") != ENCODING or list(enc.get("features", [])) != list(FEATURES):
        if (folder / "table.parquet").exists():  # the bundle ships its table: refit from it
            fix = (f"refit it from its own table: `python -m generation fit {folder / 'table.parquet'} "
                   f"-o {folder}-refit --ship-table`, then use {folder}-refit")
        raise BundleError(f"{path}: encoding {enc.get('name')!r} differs from this jahs-gym's {ENCODING!r}; {fix}")
    if verify_files:
        for rel, digest in manifest.get("files", {}).items():
            f = folder / rel
            if not f.exists():
                raise BundleError(f"{folder}: file {rel} listed in the manifest is missing; {fix}")
            if file_sha256(f) != digest:
                raise BundleError(f"{folder}: file {rel} is corrupted (sha256 mismatch); {fix}")
    table = manifest.get("table", {})
    if table.get("file") and verify_files and file_sha256(folder / table["file"]) != table["sha256"]:
        raise BundleError(f"{folder}: {table['file']} is not the table the bundle was fitted on; {fix}")
    return manifest


def best_test_acc(manifest: dict) -> float:
    """JAHS-v0's regret reference: the table's best test accuracy (manifests from before fit recorded it: the
    test_acc forest's upper bound)."""
    return float(manifest["table"].get("best_test_acc", manifest["metrics"]["test_acc"]["hi"]))


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
        self.manifest = read_manifest(self.folder)
        self.task: str = self.manifest["task"]
        self.metrics: tuple[str, ...] = tuple(self.manifest["metrics"])

    @property
    def max_epochs(self) -> int:
        return int(self.manifest["protocol"]["max_epochs"])

    @property
    def speed_corrected(self) -> bool:
        """Whether the timing surrogates were fitted on speed-corrected labels (``fit --speed-window`` > 0)."""
        return any("speed_correction" in v for v in self.manifest["metrics"].values())

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {m: (v["lo"], v["hi"]) for m, v in self.manifest["metrics"].items()}

    def transforms(self) -> dict[str, str]:
        return {m: v["transform"] for m, v in self.manifest["metrics"].items()}

    def model_files(self, metrics: tuple[str, ...] | None = None) -> dict[str, Path]:
        metrics = self._check_metrics(metrics)
        return {m: self.folder / self.manifest["metrics"][m]["file"] for m in metrics}

    def _check_metrics(self, metrics: Any) -> tuple[str, ...]:
        if metrics is None:
            return self.metrics
        metrics = tuple(metrics)
        bad = [m for m in metrics if m not in self.metrics]
        if bad:
            raise KeyError(f"metric(s) {bad} are not in the {self.task} bundle; available: {list(self.metrics)}")
        return metrics

    def predictor(self, metrics: tuple[str, ...] | None = None, backend: str | None = None) -> Any:
        return _predictor(self.folder, self.manifest[_SELF], self._check_metrics(metrics), backend)

    def naive_predictor(self, metrics: tuple[str, ...] | None = None) -> Any:
        from jahs_gym.predictor import NaivePredictor

        files = self.model_files(metrics)
        return NaivePredictor(files, self.transforms(), self.bounds(), self.linear(tuple(files)))

    def linear(self, metrics: tuple[str, ...]) -> dict[str, tuple[list[int], list[float]]]:
        """metric -> (feature indices, [intercept, coefs]) of the metrics that have a linear base."""
        from jahs_gym.space import FEATURES

        out = {}
        for m in metrics:
            lin = self.manifest["metrics"][m].get("linear")
            if lin:
                out[m] = ([FEATURES.index(f) for f in lin["features"]], list(lin["coef"]))
        return out

    def table_path(self) -> Path | None:
        f = self.manifest.get("table", {}).get("file")
        return self.folder / f if f else None

    def speed_factors_path(self) -> Path | None:
        """Per-task speed factors of the shipped table's timings (``jahs_gym.fit.write_speed_factors``), if any."""
        f = self.manifest.get("table", {}).get("speed_factors")
        return self.folder / f if f else None


@functools.lru_cache(maxsize=32)
def _predictor(folder: Path, digest: str, metrics: tuple[str, ...], backend: str | None) -> Any:
    """One ForestPredictor per (bundle, metrics, backend) per process."""
    from jahs_gym.predictor import load_forest
    from jahs_gym.space import N_FEATURES

    b = Bundle(folder)
    bounds, tr = b.bounds(), b.transforms()
    return load_forest(b.model_files(metrics), {m: tr[m] for m in metrics}, {m: bounds[m] for m in metrics},
                       N_FEATURES, backend, linear=b.linear(metrics))


@functools.lru_cache(maxsize=32)
def load_bundle(task_or_folder: str) -> Bundle:
    """A bundle by task name (searched as :func:`installed_tasks`) or folder path; cached per process."""
    p = Path(task_or_folder)
    if (p / "manifest.json").exists():
        return Bundle(p)
    return Bundle(find_bundle(task_or_folder))
