"""The typed manifest: round trip of the shipped bundles, frozen, and one clear BundleError per defect."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from jahs_gym import manifest as manifest_mod
from jahs_gym import manifest_file as manifest_file_mod
from jahs_gym.bundle import DATA_DIR, Bundle
from jahs_gym.manifest import _SELF, FORMAT_VERSION, BundleError, Manifest
from jahs_gym.manifest_file import _canonical, read_manifest, write_manifest

SHIPPED = ["fashion_mnist", "mnist"]


def _raw(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _sign(folder: Path, data: dict) -> None:
    """Write ``data`` as the manifest with a correct manifest_sha256 (``files`` left as edited)."""
    data[_SELF] = hashlib.sha256(_canonical(data)).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(data, indent=1))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    dst = tmp_path / "bundle" / "fashion_mnist"
    shutil.copytree(DATA_DIR / "fashion_mnist", dst)
    return dst


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_bundles_round_trip(task: str) -> None:
    folder = DATA_DIR / task
    data = _raw(folder)
    m = Manifest.from_json(data, folder)
    assert m.to_json() == data
    assert Manifest.from_json(m.to_json(), folder) == m
    assert read_manifest(folder) == m
    assert m.task == task and m.format_version == FORMAT_VERSION and m.digest == data[_SELF]
    assert m.protocol.max_epochs == data["protocol"]["max_epochs"] == Bundle(folder).max_epochs
    assert m.default_budget_s == data["default_budget_s"] and dict(m.noise) == data["noise"]
    assert m.table.best_test_acc == data["table"]["best_test_acc"] and m.table.file == "table.parquet"
    assert m.regret_reference == data["optimum"]["test_acc"]["value"] and m.noise_space == "fitted"
    assert m.full_fidelity_cost_s == data["optimum"]["full_fidelity_cost_s"] > 0
    e = m.metrics["cpu_runtime"]
    assert (e.file, e.transform, e.lo, e.hi) == tuple(data["metrics"]["cpu_runtime"][k]
                                                      for k in ("file", "transform", "lo", "hi"))
    assert e.linear is not None and list(e.linear.coef) == data["metrics"]["cpu_runtime"]["linear"]["coef"]
    assert e.speed_correction is not None and m.speed_corrected


def test_manifest_is_frozen() -> None:
    m = read_manifest(DATA_DIR / "fashion_mnist", verify_files=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.task = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.metrics["test_acc"].hi = 100.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.metrics["x"] = m.metrics["test_acc"]  # type: ignore[index]
    with pytest.raises(TypeError):
        m.noise["test_acc"] = 0.0  # type: ignore[index]
    with pytest.raises(TypeError):
        m.metrics["valid_acc"].quality_by_fidelity["N1-W4-R1"]["r2"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        m.optimum["test_acc"]["value"] = 100.0  # type: ignore[index]
    with pytest.raises(TypeError):
        m["task"]  # type: ignore[index]  # no string-key access: typed attributes only
    d = m.to_json()
    d["optimum"]["test_acc"]["value"] = 0.0  # a fresh copy: the manifest is untouched
    assert m.regret_reference > 0


def test_a_manifest_without_a_surrogate_optimum_has_no_regret_reference(bundle: Path) -> None:
    data = _raw(bundle)
    del data["optimum"]
    m = Manifest.from_json(data)
    with pytest.raises(BundleError, match="records no surrogate optimum .* refit it"):
        _ = m.regret_reference
    assert m.full_fidelity_cost_s is None


@pytest.mark.parametrize(("path", "value", "needle"), [
    (("optimum", "test_acc", "value"), 101.0, r"optimum\['test_acc'\]\.value"),
    (("optimum", "full_fidelity_cost_s"), -1.0, r"optimum\.full_fidelity_cost_s"),
    (("noise_space",), "bits", r"noise_space"),
])
def test_bad_optimum_and_noise_space_are_refused(bundle: Path, path: tuple, value: object, needle: str) -> None:
    data = _raw(bundle)
    d = data
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    with pytest.raises(BundleError, match=needle):
        Manifest.from_json(data)


def test_version_mismatch_is_refused(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _raw(bundle)
    data["format_version"] = 7
    _sign(bundle, data)
    with pytest.raises(BundleError, match=r"format_version 7 is not supported .*allowed: \[1\]"):
        read_manifest(bundle)
    # a format this jahs-gym knows how to migrate is read
    monkeypatch.setitem(manifest_mod._MIGRATIONS, 7, lambda d: {**d, "format_version": FORMAT_VERSION})
    assert read_manifest(bundle).format_version == FORMAT_VERSION


def _files_list(d: dict) -> None:
    d["files"] = sorted(d["files"])


def _unknown_metric(d: dict) -> None:
    d["metrics"]["accuracy"] = d["metrics"]["test_acc"]


def _not_listed(d: dict) -> None:
    del d["files"]["models/runtime.ubj"]


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        *head, last = path.split(":")
        for k in head:
            d = d[k]
        d[last] = value
    return edit


MALFORMED = {  # defect -> (edit of the manifest, the field the error must name)
    "files as a list": (_files_list, r"files is a list; allowed: a dict of relative path -> 64-hex sha256"),
    "a file hash not hex": (_set("files:DATA_CARD.md", "abc"), r"files\['DATA_CARD.md'\] is 'abc'"),
    "encoding as a string": (_set("encoding", "jahs-onehot-v4"), r"encoding is a str; allowed: a dict with name"),
    "no metrics": (_set("metrics", {}), r"metrics is empty; allowed: a non-empty dict"),
    "unknown transform": (_set("metrics:runtime:transform", "sqrt"),
                          r"metrics\['runtime'\]\.transform is 'sqrt'; allowed: one of \['none', 'log', 'log1p'"),
    "lo above hi": (_set("metrics:valid_acc:lo", 99.0), r"metrics\['valid_acc'\]\.lo 99.0 is above hi .*lo <= hi"),
    "NaN bound": (_set("metrics:test_acc:hi", math.nan), r"metrics\['test_acc'\]\.hi is nan; allowed: a finite"),
    "unknown metric": (_unknown_metric, r"metrics\['accuracy'\] is not a known metric; allowed: one of \["),
    "model not in files": (_not_listed, r"metrics\['runtime'\]\.file 'models/runtime.ubj' is not listed in files"),
    "budget not positive": (_set("default_budget_s", 0), r"default_budget_s is 0; allowed: a positive finite"),
    "negative noise": (_set("noise:valid_acc", -1.0), r"noise\['valid_acc'\] is -1.0; allowed: a finite std >= 0"),
    "task not a string": (_set("task", 3), r"task is 3; allowed: a string"),
    "table as a list": (_set("table", []), r"table is a list; allowed: a dict"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_manifest_names_the_field(bundle: Path, case: str) -> None:
    edit, match = MALFORMED[case]
    data = _raw(bundle)
    edit(data)
    _sign(bundle, data)
    with pytest.raises(BundleError, match=match):
        read_manifest(bundle)
    with pytest.raises(BundleError, match=match):
        Manifest.from_json(data)


def _recorded_opens(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = manifest_file_mod.file_sha256

    def spy(path: Path | str) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(manifest_file_mod, "file_sha256", spy)
    return seen


@pytest.mark.parametrize("rel, match", [
    ("../../etc/passwd", r"files\['../../etc/passwd'\] '../../etc/passwd' climbs out with '..'"),
    ("/etc/passwd", r"files\['/etc/passwd'\] '/etc/passwd' is an absolute path"),
])
def test_paths_leaving_the_bundle_are_refused_before_opening(bundle: Path, rel: str, match: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = _raw(bundle)
    data["files"][rel] = "0" * 64
    _sign(bundle, data)
    seen = _recorded_opens(monkeypatch)
    with pytest.raises(BundleError, match=match):
        read_manifest(bundle)
    assert seen == []  # refused before any file was hashed
    data = _raw(bundle)  # a metric's model file pointing out, listed too
    del data["files"][rel]
    data["files"]["../outside.ubj"] = data["files"].pop("models/runtime.ubj")
    data["metrics"]["runtime"]["file"] = "../outside.ubj"
    _sign(bundle, data)
    with pytest.raises(BundleError, match=r"'\.\./outside\.ubj' climbs out"):
        read_manifest(bundle)
    assert seen == []


def test_symlink_leading_outside_is_refused(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the bundle's")
    (bundle / "models" / "link.ubj").symlink_to(secret)
    write_manifest(bundle, _raw(bundle))  # lists link.ubj with the outside file's hash
    seen = _recorded_opens(monkeypatch)
    with pytest.raises(BundleError, match=r"files\['models/link.ubj'\] .* resolves outside the bundle folder"):
        read_manifest(bundle)
    assert seen == []
    (bundle / "models" / "link.ubj").unlink()  # a symlink that stays inside is fine
    (bundle / "models" / "link.ubj").symlink_to(bundle / "DATA_CARD.md")
    write_manifest(bundle, _raw(bundle))
    assert "models/link.ubj" in read_manifest(bundle).files


def test_table_file_must_be_listed(bundle: Path) -> None:
    data = _raw(bundle)
    del data["files"]["table.parquet"]
    _sign(bundle, data)
    with pytest.raises(BundleError, match=r"table\.file 'table.parquet' is not listed in files"):
        read_manifest(bundle)


def test_too_large_manifest_is_refused_before_parsing(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = (bundle / "manifest.json").stat().st_size
    monkeypatch.setattr(manifest_file_mod, "MAX_MANIFEST_BYTES", size - 1)
    monkeypatch.setattr(manifest_file_mod, "json", SimpleNamespace(loads=lambda *a, **k: pytest.fail("parsed")))
    with pytest.raises(BundleError, match=rf"manifest.json is {size} bytes, over the {size - 1}"):
        read_manifest(bundle)


def test_write_manifest_takes_a_manifest(bundle: Path) -> None:
    m = read_manifest(bundle)
    (bundle / "DATA_CARD.md").write_text("rewritten\n")
    write_manifest(bundle, m)  # re-hash, as `generation fit` does after the data card
    again = read_manifest(bundle)
    assert again.files["DATA_CARD.md"] != m.files["DATA_CARD.md"] and again.metrics == m.metrics


def test_the_data_card_names_every_place_an_ordering_changed() -> None:
    from generation.datacard import _order_change

    assert _order_change(["a", "b", "c"], ["a", "b", "c"]) == "the same order"
    assert _order_change(["a", "b", "c"], ["a", "c", "b"]) == "first place held, places changed (b 2 -> 3, c 3 -> 2)"
    assert _order_change(["a", "b", "c"], ["b", "a", "c"]).startswith("THE FIRST PLACE CHANGED (a -> b)")
    assert _order_change(["a", "b"], ["a", "c"]) == "other agents (a < c)"
