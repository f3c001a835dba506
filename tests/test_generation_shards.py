"""Shard checks (issue 19, generation): every damaged shard is refused by name, every shard a run can write
passes (hypothesis over shard contents, from real tiny runs), and merge names each bad file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation.merge import MergeError, merge
from generation.plan import Plan
from generation.shards import check_shard
from tests.test_generation_reliability import ROOT, finished_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished real run: 3 tasks x 3 epochs (do not modify; copy it)."""
    return finished_run(tmp_path_factory.mktemp("trained") / "run")


def _set(col: str, value: object, row: int | None = None):  # noqa: ANN202
    """A change that sets ``col`` to ``value`` in one row (every row: None), keeping the column's dtype."""
    def f(df: pd.DataFrame) -> pd.DataFrame:
        fits = {"i": isinstance(value, int), "f": isinstance(value, float)}.get(df[col].dtype.kind, True)
        df = df if fits else df.astype({col: object})
        df.loc[df.index if row is None else [row], col] = value
        return df
    return f


MUTATIONS = [  # (what is wrong, change, words of the problem)
    ("last epoch lost", lambda df: df.iloc[:-1], "2 epoch(s) where the plan trains 3"),
    ("middle epoch lost", lambda df: df.drop(index=1), "epochs [1, 3] are not 1..2"),
    ("epoch twice", lambda df: pd.concat([df, df.iloc[[1]]]), "are not 1..4"),
    ("NaN in an ok row", _set("valid_acc", float("nan"), 0), "valid_acc is nan at epoch 1"),
    ("inf loss", _set("train_loss", float("inf"), 2), "train_loss is inf at epoch 3"),
    ("accuracy over 100", _set("test_acc", 100.5, 1), "column test_acc has 1 value(s) outside"),
    ("negative runtime", _set("runtime", -1.0, 0), "column runtime has 1 value(s) outside"),
    ("op outside the space", _set("Op3", 7), "config outside the search space"),
    ("learning rate outside the space", _set("LearningRate", 3.0), "LearningRate"),
    ("fidelity outside the space", _set("N", 2), "config outside the search space"),
    ("rows of two runs", _set("seed", 1, 2), "change between rows"),
    ("task_id not the file's", _set("task_id", "abc"), "is not the file's name"),
    ("another task's rows", _set("task", "mnist"), "where the plan's protocol is 'fashion_mnist'"),
    ("a column missing", lambda df: df.drop(columns=["valid_loss"]), "missing column(s) ['valid_loss']"),
    ("an unknown column", lambda df: df.assign(extra=1.0), "['extra'] are not in"),
    ("a status outside the schema", _set("status", "weird", 2), "status has value(s) ['weird']"),
    ("diverged then trained on", _set("status", "diverged", 0), "statuses"),
    ("seed as float", lambda df: df.astype({"seed": float}), "column seed has dtype float64"),
    ("no rows", lambda df: df.iloc[:0], "no rows"),
]


def _write(df: pd.DataFrame, folder: Path, name: str) -> Path:
    path = folder / f"{name}.parquet"
    df.to_parquet(path, index=False)
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(MUTATIONS), which=st.integers(0, 2))
def test_every_damaged_shard_is_refused_by_name(trained: Path, mutation: tuple, which: int) -> None:
    plan = Plan.load(trained)
    task = plan.tasks[which]
    good = pd.read_parquet(trained / "shards" / f"{task.task_id}.parquet")
    _, change, words = mutation
    with tempfile.TemporaryDirectory() as d:
        check = check_shard(_write(change(good.copy()), Path(d), task.task_id), task, plan.protocol)
    assert not check.ok and any(words in p for p in check.problems), check.problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), cut=st.integers(0, 10**6))
def test_every_truncation_of_a_shard_is_refused(trained: Path, which: int, cut: int) -> None:
    plan = Plan.load(trained)
    task = plan.tasks[which]
    data = (trained / "shards" / f"{task.task_id}.parquet").read_bytes()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{task.task_id}.parquet"
        path.write_bytes(data[: cut % len(data)])
        check = check_shard(path, task, plan.protocol)
    assert not check.ok and ("empty file" in check.problems[0] or "not a readable parquet" in check.problems[0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), diverged_at=st.none() | st.integers(1, 3),
       legacy=st.sampled_from([(), ("epoch_started",), ("cpu_runtime", "epoch_started")]),
       order=st.permutations([0, 1, 2]))
def test_shards_a_run_can_write_pass(trained: Path, which: int, diverged_at: int | None, legacy: tuple,
                                     order: list[int]) -> None:
    """A diverged run (fewer epochs, NaN losses in its last one), shards from before cpu_runtime or
    epoch_started were recorded, rows in any order: all finished runs of the plan."""
    plan = Plan.load(trained)
    task = plan.tasks[which]
    df = pd.read_parquet(trained / "shards" / f"{task.task_id}.parquet").iloc[order]
    if diverged_at is not None:
        df = df[df["epoch"] <= diverged_at].copy()
        last = df["epoch"] == diverged_at
        df.loc[last, "status"] = "diverged"
        df.loc[last, ["train_loss", "valid_loss", "test_loss", "train_acc"]] = float("nan")
    with tempfile.TemporaryDirectory() as d:
        check = check_shard(_write(df.drop(columns=list(legacy)), Path(d), task.task_id), task, plan.protocol)
    assert check.ok, check.problems
    assert check.frame["epoch"].tolist() == list(range(1, len(df) + 1)) and check.filled == legacy


def test_merge_names_every_bad_shard_and_writes_nothing(trained: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    a, b, c = sorted((run_dir / "shards").glob("*.parquet"))
    _set("valid_acc", float("nan"), 0)(pd.read_parquet(a)).to_parquet(a, index=False)
    pd.read_parquet(b).iloc[:2].to_parquet(b, index=False)
    c.write_bytes(c.read_bytes()[:100])
    stray = run_dir / "shards" / "0123456789ab-N1-W4-R0.25-s0.parquet"
    shutil.copy(a, stray)
    out = tmp_path / "table.parquet"
    with pytest.raises(MergeError) as err:
        merge([run_dir], out)
    lines = str(err.value).splitlines()
    assert lines[0] == "4 of 4 shard(s) fail their checks; no table written:"
    assert f"  {a}: valid_acc is nan at epoch 1 (status 'ok')" in str(err.value)
    assert f"  {b}: 2 epoch(s) where the plan trains 3" in str(err.value)
    assert f"  {c}: not a readable parquet file" in str(err.value)
    assert f"  {stray}: not a task of {run_dir / 'plan.json'}" in str(err.value)
    assert len(lines) == 6 and not out.exists()
    r = subprocess.run([sys.executable, "-m", "generation", "merge", str(run_dir), "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("merge refused: 4 of 4 shard(s)") and "Traceback" not in r.stderr


def test_merge_refuses_run_folders_of_different_protocols(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    doc = json.loads((other / "plan.json").read_text())
    doc["protocol"]["n_test"] = 256
    (other / "plan.json").write_text(json.dumps(doc))
    assert len(merge([other])[0]) == 9
    with pytest.raises(MergeError, match="different protocols"):
        merge([trained, other])
