"""A bundle's ``manifest.json`` as a typed, frozen :class:`Manifest`.

:meth:`Manifest.from_json` is the one place that checks a manifest's format version (migrating the older
formats it can) and structure; reading it from a bundle folder (with what needs the folder: its size, its own
sha256, the encoding, the task's folder name, the listing and every file's sha256) and writing it are
:mod:`jahs_gym.manifest_file`. Fields a reader does not need typed (``compute``, ``fit``, ``versions``, a metric's
``params``) stay reachable through the frozen ``raw`` mappings; :meth:`Manifest.to_json` gives the dict back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jahs_gym.bundle_trust import (
    BundleError,
    Validator,
    finite,
    inside,
    is_int,
    is_num,
    numbers,
)

FORMAT_VERSION = 1
NOISE_SPACES = ("metric", "fitted")  # what a manifest's noise stds are in: metric units (older fits) or fitted space
MAX_TREE_DEPTH = 64  # a metric's declared params.max_depth is at most this (fit's grid: 4..8)
MAX_EPOCHS = 10_000  # protocol.max_epochs is at most this (JAHS-Bench-201: 200)
_SELF = "manifest_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# format_version -> a function taking a manifest of that version to the next; the formats read by migrating
_MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return MappingProxyType({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _thaw(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class LinearBase:
    """A metric's linear base in encoded features: ``coef`` is [intercept, one coefficient per feature]."""

    features: tuple[str, ...]
    coef: tuple[float, ...]


@dataclass(frozen=True)
class MetricEntry:
    """One surrogate metric: its model file, fitted transform and bounds, and what the fit recorded."""

    name: str
    file: str
    transform: str
    lo: float
    hi: float
    unit: str | None = None
    quality: Mapping[str, Any] = field(default_factory=_empty, repr=False)
    n_trees: int | None = None
    linear: LinearBase | None = field(default=None, repr=False)
    speed_correction: Mapping[str, Any] | None = field(default=None, repr=False)
    ceiling: Mapping[str, Any] | None = field(default=None, repr=False)
    parsimony: Mapping[str, Any] | None = field(default=None, repr=False)
    quality_by_fidelity: Mapping[str, Any] | None = field(default=None, repr=False)
    quality_single_run: Mapping[str, Any] | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False)
    max_depth: int | None = None  # params.max_depth: the loader refuses a tree deeper than this


@dataclass(frozen=True)
class Encoding:
    """The feature encoding the surrogates were fitted on: its name and feature names, in column order."""

    name: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class ProtocolInfo:
    """The run's protocol as recorded (``raw``: the :class:`jahs_gym.protocol.Protocol` fields it had)."""

    max_epochs: int
    task: str | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False)


@dataclass(frozen=True)
class TableInfo:
    """The training table: checksum, where it ships (``file``, ``speed_factors``: None when not shipped)."""

    sha256: str | None = None
    file: str | None = None
    speed_factors: str | None = None
    best_test_acc: float | None = None
    best_valid_acc: float | None = None
    best_test_acc_at: str | None = None
    rows: int | None = None
    tasks: int | None = None
    configs: int | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False)


@dataclass(frozen=True)
class Manifest:
    """A checked bundle manifest. Build it with :meth:`from_json` (or :func:`read_manifest`)."""

    format_version: int
    task: str
    protocol: ProtocolInfo
    encoding: Encoding = field(repr=False)
    metrics: Mapping[str, MetricEntry]
    table: TableInfo
    default_budget_s: float
    files: Mapping[str, str] = field(repr=False)
    digest: str
    noise: Mapping[str, float] = field(default_factory=_empty, repr=False)
    noise_space: str = "metric"  # "fitted": std in the surrogate's fitted space; "metric": units (older fits)
    optimum: Mapping[str, Any] = field(default_factory=_empty, repr=False)  # generation.optimum.optimum_record
    compute: Mapping[str, Any] = field(default_factory=_empty, repr=False)
    fit: Mapping[str, Any] = field(default_factory=_empty, repr=False)
    versions: Mapping[str, Any] = field(default_factory=_empty, repr=False)
    created: str | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False)

    @property
    def regret_reference(self) -> float:
        """JAHS-v0's regret reference: the highest test accuracy the surrogate predicts anywhere in the env's
        query space (``optimum``, searched by ``generation.optimum`` when the bundle was fitted).

        Raises:
            BundleError: The manifest records no optimum (a bundle fitted by an older jahs-gym).
        """
        ref = self.optimum.get("test_acc", {}).get("value")
        if ref is None:
            raise BundleError(f"the {self.task} bundle records no surrogate optimum (fitted by an older jahs-gym), "
                              "so regret has no reference; refit it: `python -m generation fit TABLE -o FOLDER`")
        return float(ref)

    @property
    def full_fidelity_cost_s(self) -> float | None:
        """Mean predicted cost of one full-fidelity evaluation (the JAHS-Bench-201 protocol's budget unit)."""
        v = self.optimum.get("full_fidelity_cost_s")
        return None if v is None else float(v)

    @property
    def speed_corrected(self) -> bool:
        """Whether any metric's labels were speed-corrected (``fit --speed-window`` > 0)."""
        return any(e.speed_correction is not None for e in self.metrics.values())

    def to_json(self) -> dict[str, Any]:
        """The manifest as a plain (mutable, fresh) dict, as :func:`write_manifest` takes it.

        Returns:
            A fresh copy of the manifest's JSON.
        """
        return _thaw(self.raw)

    @classmethod
    def from_json(cls, data: Any, folder: Path | str | None = None) -> Manifest:
        """Check ``data`` (a parsed manifest.json) and build the manifest; raise :class:`BundleError` naming the
        bad field and what is allowed. With ``folder``, every path must also stay inside it (nothing opened).

        Args:
            data: The parsed manifest.json.
            folder: The bundle folder, or None (paths are then not checked against a folder).

        Returns:
            The checked manifest.
        """
        where = f"{Path(folder) / 'manifest.json'}" if folder is not None else "manifest"
        v = Validator(where)
        data = _migrate(v.obj(data, "the manifest"), where)
        from jahs_gym.metrics import BY_NAME
        from jahs_gym.transforms import TRANSFORMS

        files = v.obj(data.get("files"), "files", "a dict of relative path -> 64-hex sha256")
        for rel, h in files.items():
            if not isinstance(rel, str) or not rel or not isinstance(h, str) or not _HEX64.fullmatch(h):
                v.fail(f"files[{rel!r}]", f"is {h!r}", "a dict of relative path -> 64-hex sha256 (lowercase)")
        digest = data.get(_SELF)
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            v.fail(_SELF, f"is {digest!r}", "a 64-hex sha256 (write_manifest adds it)")
        task = v.text(data.get("task"), "task")
        enc = v.obj(data.get("encoding"), "encoding", "a dict with name (str) and features (list of str)")
        feats = enc.get("features")
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
            v.fail("encoding.features", f"is {type(feats).__name__}", "a list of feature names (str)")
        encoding = Encoding(v.text(enc.get("name"), "encoding.name"), tuple(feats))
        proto = v.obj(data.get("protocol"), "protocol", f"a dict with max_epochs (int in 1..{MAX_EPOCHS})")
        me = proto.get("max_epochs")
        if not is_int(me) or not 1 <= me <= MAX_EPOCHS:
            v.fail("protocol.max_epochs", f"is {me!r}", f"an integer in 1..{MAX_EPOCHS}")
        for k, x in proto.items():
            if not (x is None or isinstance(x, (str, int, float))):
                v.fail(f"protocol.{k}", f"is a {type(x).__name__}", "a string, number, bool or null")
        ptask = proto.get("task")
        if ptask is not None and ptask != task:
            v.fail("protocol.task", f"is {ptask!r}", f"the manifest's task {task!r}")
        protocol = ProtocolInfo(me, v.text(ptask, "protocol.task") if ptask is not None else None, _freeze(proto))

        raw_metrics = v.obj(data.get("metrics"), "metrics", f"a non-empty dict of metric names {list(BY_NAME)}")
        if not raw_metrics:
            v.fail("metrics", "is empty", f"a non-empty dict of metric names {list(BY_NAME)}")
        metrics: dict[str, MetricEntry] = {}
        for name, e in raw_metrics.items():
            if name not in BY_NAME:
                v.fail(f"metrics[{name!r}]", "is not a known metric", f"one of {list(BY_NAME)}")
            metrics[name] = _metric(v, name, e, files, encoding, TRANSFORMS)
            same = [m for m, x in metrics.items() if x.file == metrics[name].file and m != name]
            if same:
                v.fail(f"metrics[{name!r}].file", f"{metrics[name].file!r} is metric {same[0]!r}'s model too",
                       "a model file of its own per metric")

        t = v.obj(data.get("table", {}), "table", "a dict (sha256, file, speed_factors, best_test_acc, ...)")
        tsha = t.get("sha256")
        if tsha is not None and not (isinstance(tsha, str) and _HEX64.fullmatch(tsha)):
            v.fail("table.sha256", f"is {tsha!r}", "a 64-hex sha256")
        tfile, sf = v.opt_str(t.get("file"), "table.file"), v.opt_str(t.get("speed_factors"), "table.speed_factors")
        if tfile is not None and tsha is None:
            v.fail("table.sha256", "is missing", "the shipped table's 64-hex sha256")
        for key, rel in (("table.file", tfile), ("table.speed_factors", sf)):
            if rel is not None and rel not in files:
                v.fail(key, f"{rel!r} is not listed in files", "a file the manifest lists (and checksums)")
        table = TableInfo(tsha, tfile, sf, v.opt_num(t.get("best_test_acc"), "table.best_test_acc"),
                          v.opt_num(t.get("best_valid_acc"), "table.best_valid_acc"),
                          v.opt_str(t.get("best_test_acc_at"), "table.best_test_acc_at"),
                          *(v.opt_int(t.get(k), f"table.{k}") for k in ("rows", "tasks", "configs")), _freeze(t))

        budget = data.get("default_budget_s")
        if not finite(budget) or not budget > 0:
            v.fail("default_budget_s", f"is {budget!r}", "a positive finite number of simulated seconds")
        noise = v.obj(data.get("noise", {}), "noise", "a dict metric -> finite std >= 0")
        for m, s in noise.items():
            if m not in metrics:
                v.fail(f"noise[{m!r}]", "is not a metric of this bundle", f"one of {list(metrics)}")
            if not finite(s) or not s >= 0:
                v.fail(f"noise[{m!r}]", f"is {s!r}", "a finite std >= 0")
        noise_space = data.get("noise_space", "metric")
        if noise_space not in NOISE_SPACES:
            v.fail("noise_space", f"is {noise_space!r}", f"one of {list(NOISE_SPACES)}")
        extras = {k: v.obj(data.get(k) or {}, k, "a dict or null") for k in ("compute", "fit", "versions")}

        if folder is not None:  # every path the manifest names stays inside the folder: checked, not opened
            root = Path(folder).resolve()
            for key, rel in [*((f"files[{r!r}]", r) for r in files),
                             *((f"metrics[{m!r}].file", e.file) for m, e in metrics.items()),
                             ("table.file", tfile), ("table.speed_factors", sf)]:
                why = inside(root, rel) if rel is not None else None
                if why:
                    v.fail(key, why, "a path inside the bundle folder, relative to it")

        return cls(data["format_version"], task, protocol, encoding, MappingProxyType(metrics), table,
                   float(budget), MappingProxyType(dict(files)), digest,
                   MappingProxyType({m: float(s) for m, s in noise.items()}), noise_space, _optimum(v, data),
                   *(_freeze(extras[k]) for k in ("compute", "fit", "versions")),
                   v.opt_str(data.get("created"), "created"), _freeze(data))


def _metric(v: Validator, name: str, e: Any, files: dict, encoding: Encoding, transforms: tuple) -> MetricEntry:
    key = f"metrics[{name!r}]"
    e = v.obj(e, key, "a dict with file, transform, lo, hi")
    f = v.text(e.get("file"), f"{key}.file")
    if f not in files:
        v.fail(f"{key}.file", f"{f!r} is not listed in files", "a file the manifest lists (and checksums)")
    tr = e.get("transform")
    if tr not in transforms:
        v.fail(f"{key}.transform", f"is {tr!r}", f"one of {list(transforms)}")
    from jahs_gym.metrics import BY_NAME

    lo, hi = e.get("lo"), e.get("hi")
    spec = BY_NAME[name]
    for b, x in (("lo", lo), ("hi", hi)):
        if not finite(x) or not spec.lo <= x <= spec.hi:
            v.fail(f"{key}.{b}", f"is {x!r}", f"a finite number in [{spec.lo}, {spec.hi}] ({name}'s range)")
    if lo > hi:
        v.fail(f"{key}.lo", f"{lo!r} is above hi {hi!r}", "lo <= hi")
    params = v.obj(e.get("params"), f"{key}.params", "a dict with max_depth (the fit's XGBoost parameters)")
    depth = params.get("max_depth")
    if not is_int(depth) or not 1 <= depth <= MAX_TREE_DEPTH:
        v.fail(f"{key}.params.max_depth", f"is {depth!r}", f"an integer in 1..{MAX_TREE_DEPTH}")
    n_trees = e.get("n_trees")
    if not is_int(n_trees) or n_trees < 1:
        v.fail(f"{key}.n_trees", f"is {n_trees!r}", "an integer >= 1 (the model's number of trees)")
    quality = v.obj(e.get("quality"), f"{key}.quality", "a dict with r2, kendall_tau, mae (numbers)")
    numbers(v, quality, f"{key}.quality", ("r2", "kendall_tau", "mae"), ("r2_raw_labels",))
    if e.get("ceiling") is not None:
        numbers(v, v.obj(e["ceiling"], f"{key}.ceiling", "a dict with r2, kendall_tau (numbers)"),
                 f"{key}.ceiling", ("r2", "kendall_tau"), ())
    lin = None
    if e.get("linear") is not None:
        raw = v.obj(e["linear"], f"{key}.linear", "a dict with features (list of str) and coef (list of numbers)")
        fs, coef = raw.get("features"), raw.get("coef")
        if not isinstance(fs, list) or not all(isinstance(x, str) and x in encoding.features for x in fs):
            v.fail(f"{key}.linear.features", f"is {fs!r}", "a list of the encoding's feature names")
        if not isinstance(coef, list) or len(coef) != len(fs) + 1 or not all(finite(c) for c in coef):
            v.fail(f"{key}.linear.coef", f"is {coef!r}", "a list of finite numbers: intercept + one per feature")
        lin = LinearBase(tuple(fs), tuple(float(c) for c in coef))
    opt = {k: (_freeze(v.obj(e[k], f"{key}.{k}", "a dict")) if e.get(k) is not None else None)
           for k in ("speed_correction", "ceiling", "parsimony", "quality_by_fidelity", "quality_single_run")}
    return MetricEntry(name, f, tr, float(lo), float(hi), v.opt_str(e.get("unit"), f"{key}.unit"), _freeze(quality),
                       n_trees, lin, **opt, raw=_freeze(e), max_depth=depth)


def _migrate(data: dict, where: str) -> dict:
    """``data`` in the current format: migrated from an older one this jahs-gym knows, else refused."""
    version = data.get("format_version")
    while is_int(version) and version in _MIGRATIONS:
        data = _MIGRATIONS[version](data)
        version = data.get("format_version")
    if not is_int(version) or version != FORMAT_VERSION:
        readable = sorted({FORMAT_VERSION, *_MIGRATIONS})
        raise BundleError(f"{where}: format_version {version!r} is not supported (this jahs-gym reads "
                          f"{FORMAT_VERSION}; allowed: {readable})")
    return data


def _optimum(v: Validator, data: dict) -> Mapping[str, Any]:
    opt = v.obj(data.get("optimum", {}), "optimum", "a dict (test_acc, valid_acc, method, full_fidelity_cost_s)")
    for m in ("test_acc", "valid_acc"):
        if m in opt:
            e = v.obj(opt[m], f"optimum[{m!r}]", "a dict with value, config, fidelity")
            x = e.get("value")
            if not is_num(x) or not 0.0 <= x <= 100.0:
                v.fail(f"optimum[{m!r}].value", f"is {x!r}", "an accuracy in [0, 100]")
            for k in ("config", "fidelity"):
                v.obj(e.get(k), f"optimum[{m!r}].{k}", "a dict (where the search found the optimum)")
    c = opt.get("full_fidelity_cost_s")
    if c is not None and (not finite(c) or not c > 0):
        v.fail("optimum.full_fidelity_cost_s", f"is {c!r}", "a positive finite number of seconds")
    return _freeze(opt)