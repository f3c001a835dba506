"""Bundles are untrusted input: nothing outside the folder is read, every file read is listed and hashed, the
manifest and the model trees are checked, and every refusal is one BundleError (also in `jahs-gym tasks`)."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jahs_gym import bundle as bundle_mod
from jahs_gym import cli
from jahs_gym.bundle import DATA_DIR, Bundle, BundleError, load_bundle, read_manifest, write_manifest
from jahs_gym.bundle_trust import MAX_NESTING, check_listing
from jahs_gym.manifest import _SELF, MAX_TREE_DEPTH
from jahs_gym.manifest_file import MAX_MANIFEST_BYTES, _canonical
from jahs_gym.predictor import ForestPredictor, ModelError, read_booster_json
from jahs_gym.space import N_FEATURES


def _raw(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _sign(folder: Path, data: dict) -> None:
    """Write ``data`` as the manifest with a correct manifest_sha256 (``files`` left as edited)."""
    data[_SELF] = hashlib.sha256(_canonical(data)).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(data, indent=1))


def _copy(tmp_path: Path, task: str = "mnist", name: str | None = None) -> Path:
    dst = tmp_path / "root" / (name or task)
    shutil.copytree(DATA_DIR / task, dst)
    return dst


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return _copy(tmp_path)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path Python opens from here on (builtins.open, io.open as pathlib uses it, os.open)."""
    seen: list[Path] = []
    real_open, real_os_open = io.open, os.open

    def spy(file: object, *a: object, **k: object) -> object:
        if isinstance(file, (str, bytes, os.PathLike)):
            seen.append(Path(os.fsdecode(file)))
        return real_open(file, *a, **k)

    def spy_os(path: object, *a: object, **k: object) -> int:
        seen.append(Path(os.fsdecode(path)))
        return real_os_open(path, *a, **k)

    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(os, "open", spy_os)
    return seen


def _touched(seen: list[Path], target: Path) -> list[Path]:
    return [p for p in seen if p.resolve() == target.resolve()]


# ------------------------------------------------------------------------------------------- paths and files
def _entry_out(rel: str) -> Callable[[Path, dict, Path], None]:
    def edit(folder: Path, data: dict, secret: Path) -> None:
        data["files"][rel.format(secret=secret)] = hashlib.sha256(secret.read_bytes()).hexdigest()
    return edit


def _model_out(folder: Path, data: dict, secret: Path) -> None:
    rel = "../../secret.ubj"
    data["files"][rel] = data["files"].pop("models/valid_acc.ubj")
    data["metrics"]["valid_acc"]["file"] = rel


OUTSIDE = {  # a manifest that names a file outside the bundle -> the error
    "files entry ../../secret.ubj": (_entry_out("../../secret.ubj"), r"files\['../../secret.ubj'\] .* climbs out"),
    "files entry deep ../": (_entry_out("models/../../../secret.ubj"), r"climbs out with '\.\.'"),
    "files entry absolute": (_entry_out("{secret}"), r"is an absolute path"),
    "metric model outside": (_model_out, r"'\.\./\.\./secret\.ubj' climbs out"),
}


@pytest.mark.parametrize("case", list(OUTSIDE))
def test_a_path_out_of_the_bundle_is_refused_without_opening_it(bundle: Path, case: str, opened: list[Path]) -> None:
    secret = bundle.parent.parent / "secret.ubj"  # a real model: read, it would hash and load fine
    shutil.copy(bundle / "models" / "valid_acc.ubj", secret)
    edit, match = OUTSIDE[case]
    data = _raw(bundle)
    edit(bundle, data, secret)
    _sign(bundle, data)
    opened.clear()
    with pytest.raises(BundleError, match=match):
        Bundle(bundle)
    assert any(p.name == "manifest.json" for p in opened)  # the spy sees what is opened
    assert _touched(opened, secret) == []


def test_symlinks_out_of_the_bundle_are_refused_without_opening(bundle: Path, opened: list[Path]) -> None:
    secret = bundle.parent.parent / "secret.ubj"
    shutil.copy(bundle / "models" / "valid_acc.ubj", secret)
    link = bundle / "models" / "valid_acc.ubj"
    link.unlink()
    link.symlink_to(secret)
    data = _raw(bundle)
    data["files"]["models/valid_acc.ubj"] = hashlib.sha256(secret.read_bytes()).hexdigest()
    _sign(bundle, data)
    opened.clear()
    with pytest.raises(BundleError, match=r"'models/valid_acc.ubj' resolves outside the bundle folder"):
        Bundle(bundle)
    assert _touched(opened, secret) == []
    link.unlink()  # the manifest itself a symlink out
    shutil.copy(secret, link)
    shutil.move(bundle / "manifest.json", bundle.parent.parent / "elsewhere.json")
    (bundle / "manifest.json").symlink_to(bundle.parent.parent / "elsewhere.json")
    opened.clear()
    with pytest.raises(BundleError, match=r"manifest.json is not a regular file inside the bundle folder"):
        Bundle(bundle)
    assert _touched(opened, bundle.parent.parent / "elsewhere.json") == []


def test_a_symlinked_folder_is_refused(bundle: Path) -> None:
    shutil.move(bundle / "models", bundle.parent.parent / "models_out")
    (bundle / "models").symlink_to(bundle.parent.parent / "models_out")
    with pytest.raises(BundleError, match=r"resolves outside the bundle folder"):
        Bundle(bundle)
    shutil.move(bundle.parent.parent / "models_out", bundle / "real_models")  # a symlinked folder inside, too
    (bundle / "models").unlink()
    (bundle / "models").symlink_to(bundle / "real_models")
    with pytest.raises(BundleError, match=r"models is a symlinked folder; allowed: plain files and folders"):
        check_listing(bundle, {}, "fix")


@pytest.mark.parametrize("rel", ["extra.bin", "models/manifest.json", "models/sub/notes.md"])
def test_an_unlisted_file_is_refused_and_write_manifest_lists_it(bundle: Path, rel: str) -> None:
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_text("{}")
    with pytest.raises(BundleError, match=rf"1 file\(s\) \['{rel}'\] are not listed in the manifest"):
        Bundle(bundle)
    assert "are not listed" in _tasks_lines({"mnist": bundle})["mnist"]
    read_manifest(bundle, verify_files=False)  # re-signing reads it unverified first: allowed
    write_manifest(bundle, read_manifest(bundle, verify_files=False))
    assert rel in Bundle(bundle).manifest.files


def test_a_listed_folder_or_missing_file_is_refused(bundle: Path) -> None:
    data = _raw(bundle)
    data["files"]["models"] = "0" * 64
    _sign(bundle, data)
    with pytest.raises(BundleError, match=r"file models listed in the manifest is missing \(or not a file\)"):
        Bundle(bundle)


def test_every_file_generation_fit_writes_is_listed(tiny_bundle: Path, tiny_table: Path, tmp_path: Path) -> None:
    """fit_bundle's folder, then what `generation fit` adds (the data card) and the benchmarks' --write-card
    (validity.json): each is listed once re-signed, and refused while it is not."""
    from generation.datacard import write_datacard

    dst = tmp_path / "fmnist_tiny"
    shutil.copytree(tiny_bundle, dst)
    check_listing(dst, read_manifest(dst).files, "fix")
    write_datacard(dst, tiny_table, None)
    write_manifest(dst, read_manifest(dst, verify_files=False))  # as `python -m generation fit` does
    assert "DATA_CARD.md" in Bundle(dst).manifest.files
    (dst / "validity.json").write_text("{}\n")
    with pytest.raises(BundleError, match=r"\['validity.json'\] are not listed"):
        Bundle(dst)
    write_manifest(dst, read_manifest(dst, verify_files=False))  # as benchmarks' sign_with_card does
    assert "validity.json" in Bundle(dst).manifest.files
    for task in ("fashion_mnist", "mnist"):
        check_listing(DATA_DIR / task, read_manifest(DATA_DIR / task).files, "fix")


def test_models_are_hashed_as_they_are_read(bundle: Path) -> None:
    b = Bundle(bundle)
    (bundle / "models" / "valid_acc.ubj").write_bytes((bundle / "models" / "test_acc.ubj").read_bytes())
    with pytest.raises(BundleError, match=r"models/valid_acc.ubj is corrupted \(sha256 mismatch\)"):
        b.naive_predictor(("valid_acc",))  # the JAHS-Bench-201 baseline reads the bytes it hashed too
    with pytest.raises(BundleError, match=r"models/valid_acc.ubj is corrupted \(sha256 mismatch\)"):
        b.predictor(("valid_acc",))

    # the table and its speed factors too (read long after the bundle was checked, by kind="table" and the env)
    from jahs_gym.table import RunTable

    for rel, timings in (("speed_factors.parquet", "corrected"), ("table.parquet", "measured")):
        (bundle / rel).write_bytes((bundle / rel).read_bytes()[:-8] + b"\0" * 8)
        with pytest.raises(BundleError, match=rf"{rel} is corrupted \(sha256 mismatch\)"):
            RunTable(b, ("valid_acc",), timings)


def test_the_predictor_is_built_from_the_manifest_it_was_asked_for(bundle: Path) -> None:
    b = Bundle(bundle)
    data = _raw(bundle)
    data["default_budget_s"] *= 2
    _sign(bundle, data)
    with pytest.raises(BundleError, match="changed since it was loaded"):
        b.predictor(("valid_acc",))


@pytest.mark.parametrize("swap", ["two listed models swapped", "a metric pointing at another's model"])
def test_a_model_under_another_metrics_name_is_refused(bundle: Path, swap: str) -> None:
    data = _raw(bundle)
    if swap == "two listed models swapped":
        a, c = bundle / "models" / "valid_acc.ubj", bundle / "models" / "train_loss.ubj"
        ra = a.read_bytes()
        a.write_bytes(c.read_bytes())
        c.write_bytes(ra)
        write_manifest(bundle, data)  # re-signed: every hash matches
        with pytest.raises(BundleError, match=r"valid_acc.ubj has 67 trees, its manifest says n_trees 54"):
            Bundle(bundle).predictor(("valid_acc",))
    else:
        data["metrics"]["valid_acc"]["file"] = "models/test_acc.ubj"
        _sign(bundle, data)
        with pytest.raises(BundleError, match=r"'models/test_acc.ubj' is metric 'valid_acc''s model too"):
            Bundle(bundle)


# ----------------------------------------------------------------------------------------- task and folder
def test_a_folder_named_after_a_task_must_hold_that_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jahs_gym.benchmark import Benchmark

    shadow = _copy(tmp_path, "fashion_mnist", "mnist")
    monkeypatch.setenv("JAHS_GYM_DATA", str(shadow.parent))
    load_bundle.cache_clear()
    try:
        with pytest.raises(BundleError, match=r"mnist holds a bundle of task 'fashion_mnist'; allowed: a folder named "
                                              r"after a task .* \(rename the folder, e\.g\. fashion_mnist_mine\)"):
            Benchmark("mnist")
        shadow.rename(shadow.parent / "fmnist_mine")  # a name of the user's own: the bundle's name
        b = Benchmark("fmnist_mine")
        assert b.bundle.task == "fashion_mnist" and b.bundle.folder.name == "fmnist_mine"
    finally:
        load_bundle.cache_clear()


# --------------------------------------------------------------------------------- malformed manifests
def _deep(folder: Path, data: dict) -> None:
    (folder / "manifest.json").write_text('{"format_version": 1, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")


def _nested_just_over(folder: Path, data: dict) -> None:
    x: object = 1
    for _ in range(MAX_NESTING):
        x = [x]
    data["compute"]["deep"] = x
    _sign(folder, data)


def _set(path: str, value: object) -> Callable[[Path, dict], None]:
    def edit(folder: Path, data: dict) -> None:
        *head, last = path.split(":")
        d = data
        for k in head:
            d = d[k]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value
        _sign(folder, data)
    return edit


_DELETE = object()
MALFORMED = {  # what the issue found (or what `jahs-gym tasks` then failed on) -> the field the error names
    "200k-deep nesting": (_deep, r"nests deeper than 32 levels"),
    "nesting one over the limit": (_nested_just_over, r"nests deeper than 32 levels"),
    "valid_acc hi beyond 100": (_set("metrics:valid_acc:hi", 150.0),
                                r"valid_acc'\]\.hi is 150.0; allowed: .*\[0, 100\]"),
    "lo below the metric's range": (_set("metrics:runtime:lo", -1.0), r"runtime'\]\.lo is -1.0"),
    "an int too large for a float": (_set("default_budget_s", 10**400), r"default_budget_s is 1000"),
    "max_epochs 10**9": (_set("protocol:max_epochs", 10**9), r"protocol\.max_epochs is 1000000000; allowed: an int"),
    "protocol value a dict": (_set("protocol:n_train", {"a": 1}), r"protocol\.n_train is a dict"),
    "protocol task another": (_set("protocol:task", "fashion_mnist"), r"protocol\.task is 'fashion_mnist'"),
    "no params": (_set("metrics:valid_acc:params", _DELETE), r"valid_acc'\]\.params is a NoneType"),
    "max_depth 0": (_set("metrics:valid_acc:params:max_depth", 0), rf"max_depth is 0; allowed: an integer in 1\.\."
                                                                  rf"{MAX_TREE_DEPTH}"),
    "n_trees null": (_set("metrics:valid_acc:n_trees", None), r"valid_acc'\]\.n_trees is None"),
    "quality without r2": (_set("metrics:valid_acc:quality:r2", _DELETE), r"quality\.r2 is None; allowed: a number"),
    "ceiling r2 a string": (_set("metrics:valid_acc:ceiling:r2", "high"), r"ceiling\.r2 is 'high'"),
    "optimum fidelity an int": (_set("optimum:test_acc:fidelity", 3), r"optimum\['test_acc'\]\.fidelity is a int"),
    "noise for a metric not in the bundle": (_set("noise:lr", 0.1), r"noise\['lr'\] is not a metric of this bundle"),
    "a path with a NUL": (_set("files:a\0b", "0" * 64), r"holds a backslash or NUL"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_manifest_is_one_bundle_error(bundle: Path, case: str) -> None:
    edit, match = MALFORMED[case]
    edit(bundle, _raw(bundle))
    with pytest.raises(BundleError, match=match):
        Bundle(bundle)
    assert "Traceback" not in _tasks_lines({"mnist": bundle})["mnist"]


def test_manifest_size_limit(bundle: Path, opened: list[Path]) -> None:
    assert issubclass(BundleError, ValueError)
    for task in ("fashion_mnist", "mnist"):  # the written manifests are tiny next to the limit
        assert (DATA_DIR / task / "manifest.json").stat().st_size * 50 < MAX_MANIFEST_BYTES
    (bundle / "manifest.json").write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    opened.clear()
    with pytest.raises(BundleError, match=rf"is {MAX_MANIFEST_BYTES + 1} bytes, over the {MAX_MANIFEST_BYTES}"):
        Bundle(bundle)
    assert [p for p in opened if p.name == "manifest.json"] == []  # refused from its size, unread


def _tasks_lines(folders: dict[str, Path], verify: bool = True) -> dict[str, str]:
    """`jahs-gym tasks` on these bundles: name -> everything it printed about that bundle."""
    import contextlib

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(cli, "installed_tasks", lambda: dict(folders))
        cli.main(["tasks"] if verify else ["tasks", "--no-verify"])
    blocks: dict[str, str] = {}
    name = None
    for line in out.getvalue().splitlines():
        head = line.split(":")[0].split("  (")[0]
        if not line.startswith(" ") and head in folders:
            name = head
        blocks[name] = blocks.get(name, "") + line + "\n"
    return blocks


def test_tasks_prints_one_line_per_broken_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = {}
    for name, edit in [("deep", _deep), ("ntrees", _set("metrics:valid_acc:n_trees", None)),
                       ("fid", _set("optimum:test_acc:fidelity", 3)), ("ok", None)]:
        folders[name] = _copy(tmp_path, "mnist", name)
        if edit:
            edit(folders[name], _raw(folders[name]))
    (folders["ok"] / "stray.txt").write_text("x")  # and an unlisted file
    folders["mnist"] = _copy(tmp_path, "fashion_mnist", "mnist")
    monkeypatch.setenv("JAHS_GYM_DATA", str(tmp_path / "root"))  # the real listing, as a user runs it
    assert set(bundle_mod.installed_tasks()) >= set(folders)
    lines = _tasks_lines(folders)
    for name in folders:
        assert lines[name].count("\n") == 1 and lines[name].startswith(f"{name}: BROKEN: "), lines[name]
    assert "deeper than 32" in lines["deep"] and "stray.txt" in lines["ok"] and "task 'fashion_mnist'" in lines["mnist"]
    assert cli.main(["tasks"]) == 0  # through installed_tasks too: no exception


# ---------------------------------------------------- hypothesis: any one mutation of a real manifest
BASE = _raw(DATA_DIR / "mnist")


def _paths(x: object, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(x, list):
        for i, v in enumerate(x[:3]):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(BASE) if p[0] != _SELF]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["../x", "/etc/passwd", "models/valid_acc.ubj", "models/test_acc.ubj", "", "a\\b", "sqrt",
                     "fashion_mnist", "0" * 64]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("scratch") / "mnist"
    shutil.copytree(DATA_DIR / "mnist", dst)
    return dst


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=st.one_of(st.just(_DELETE), VALUES), new_key=st.booleans())
def test_any_manifest_mutation_loads_or_is_one_bundle_error(scratch: Path, path: tuple, value: object,
                                                            new_key: bool) -> None:
    data = json.loads(json.dumps(BASE))
    d = data
    for k in path[:-1]:
        d = d[k]
    last = path[-1]
    if new_key and isinstance(d, dict) and value is not _DELETE:
        last = f"{last}_extra"  # a key of the user's own next to a real one
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value
    _sign(scratch, data)
    try:
        m = read_manifest(scratch)
    except BundleError as e:
        assert str(e).startswith(str(scratch)) and "\n" not in str(e)[:200]
    else:  # accepted: what downstream code relies on holds
        for e in m.metrics.values():
            assert math.isfinite(e.lo) and e.lo <= e.hi and e.max_depth and e.n_trees
        assert math.isfinite(m.default_budget_s) and m.default_budget_s > 0
        assert set(m.noise) <= set(m.metrics)
    lines = _tasks_lines({"mnist": scratch})
    assert "Traceback" not in lines["mnist"]


# ---------------------------------------------------------------------------------------- model trees
FLOPS_DOC = read_booster_json(DATA_DIR / "mnist" / "models" / "FLOPS.ubj")
FLOPS_DEPTH = _raw(DATA_DIR / "mnist")["metrics"]["FLOPS"]["params"]["max_depth"]
X = np.random.default_rng(0).random((64, N_FEATURES)).astype(np.float32) * 3


def _forest(doc: dict, depth: int | None = FLOPS_DEPTH, backend: str | None = None) -> ForestPredictor:
    return ForestPredictor({"FLOPS": doc}, {"FLOPS": "none"}, {"FLOPS": (-np.inf, np.inf)}, N_FEATURES, backend,
                           depth_limit={"FLOPS": depth} if depth else None)


def _tree0(doc: dict) -> dict:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]


def _inner_below_root(t: dict) -> int:
    """An inner node two levels below the root."""
    return t["left_children"][t["left_children"][0]]


TREE_DEFECTS = {  # edit of tree 0 -> the error
    "a cycle to an ancestor": (lambda t: t["left_children"].__setitem__(_inner_below_root(t), 1),
                               r"tree 0: a node is reached twice \(a cycle or a shared node\)"),
    "the root as a child": (lambda t: t["right_children"].__setitem__(0, 0), r"a child index is outside 1\.\."),
    "a child out of range": (lambda t: t["right_children"].__setitem__(0, 10**6), r"a child index is outside"),
    "one child only": (lambda t: t["right_children"].__setitem__(_inner_below_root(t), -1),
                       r"a node has one child"),
    "a negative feature": (lambda t: t["split_indices"].__setitem__(0, -5), r"splits on feature -5"),
    "a feature past the encoding": (lambda t: t["split_indices"].__setitem__(0, N_FEATURES),
                                    rf"splits on feature {N_FEATURES}, but the encoding has {N_FEATURES}"),
    "a NaN leaf": (lambda t: t["split_conditions"].__setitem__(t["left_children"].index(-1), math.nan),
                   r"a threshold or leaf value is not finite"),
    "a categorical split": (lambda t: t["split_type"].__setitem__(0, 1), r"it has categorical splits"),
}


@pytest.mark.parametrize("case", list(TREE_DEFECTS))
def test_a_tree_that_is_not_a_tree_is_refused(case: str) -> None:
    edit, match = TREE_DEFECTS[case]
    doc = json.loads(json.dumps(FLOPS_DOC))
    edit(_tree0(doc))
    with pytest.raises(ModelError, match=match):
        _forest(doc)


def test_depth_over_the_declared_max_and_other_objectives_are_refused() -> None:
    _forest(FLOPS_DOC)  # the real model at its declared depth
    with pytest.raises(ModelError, match=rf"tree \d+: it is deeper than {FLOPS_DEPTH - 1} \(the max_depth"):
        _forest(FLOPS_DOC, FLOPS_DEPTH - 1)
    doc = json.loads(json.dumps(FLOPS_DOC))
    doc["learner"]["objective"]["name"] = "reg:logistic"
    with pytest.raises(ModelError, match=r"objective 'reg:logistic' is not supported"):
        _forest(doc)
    doc = json.loads(json.dumps(FLOPS_DOC))
    doc["learner"]["learner_model_param"]["num_target"] = "2"
    with pytest.raises(ModelError, match="allowed: one regression target"):
        _forest(doc)


def test_a_bad_tree_in_a_bundle_is_one_bundle_error(bundle: Path) -> None:
    import xgboost as xgb

    doc = read_booster_json(bundle / "models" / "valid_acc.ubj")
    TREE_DEFECTS["a cycle to an ancestor"][0](_tree0(doc))
    xgb.Booster(model_file=bytearray(json.dumps(doc).encode())).save_model(str(bundle / "models" / "valid_acc.ubj"))
    write_manifest(bundle, _raw(bundle))  # XGBoost itself loads and saves the cycle; every hash matches
    with pytest.raises(BundleError, match=r"model 'valid_acc', tree 0: a node is reached twice"):
        Bundle(bundle).predictor()
    data = _raw(bundle)
    data["metrics"]["valid_acc"]["params"]["max_depth"] = 1
    _sign(bundle, data)
    with pytest.raises(BundleError, match=r"model 'valid_acc', tree 0: it is deeper than 1"):
        Bundle(bundle).predictor(("test_acc", "valid_acc"))


@settings(max_examples=150, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["left_children", "right_children",
                                                                      "split_indices", "split_conditions"]),
                                st.integers(0, 30), st.one_of(st.integers(-3, 70), st.floats(-5, 5),
                                                              st.sampled_from([math.nan, math.inf]))),
                      min_size=1, max_size=3))
def test_any_tree_edit_is_refused_or_predicts_as_xgboost(edits: list) -> None:
    """A tree the loader accepts is walked exactly as XGBoost walks it (the C kernel reads no memory outside the
    forest); anything else is one ModelError."""
    import xgboost as xgb

    doc = json.loads(json.dumps(FLOPS_DOC))
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    for ti, key, node, value in edits:
        arr = trees[ti % len(trees)][key]
        arr[node % len(arr)] = int(value) if key != "split_conditions" and math.isfinite(value) else value
    try:
        f = _forest(doc)
    except ModelError:
        return
    try:
        ref = xgb.Booster(model_file=bytearray(json.dumps(doc).encode()))
    except xgb.core.XGBoostError:
        return  # XGBoost refuses what jahs-gym reads: nothing to compare
    np.testing.assert_allclose(f.predict(X), ref.inplace_predict(X).astype(np.float64)[:, None], rtol=1e-5,
                               atol=1e-5)
