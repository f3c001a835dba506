"""The generation pipeline under bad numbers, re-plans, damaged shards and two runners (issue 19, generation).

Runs train for real at a tiny scale (256 images, the cheapest fidelity, 1-3 epochs), in process with one rank
or as `python -m generation` / mpiexec processes for the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generation.checks import Limit
from generation.merge import MergeError, merge
from generation.plan import Plan, PlanError, make_plan, parse_fidelities
from generation.runlock import RunLock
from jahs_gym.protocol import Protocol

ROOT = Path(__file__).resolve().parents[1]
DETERMINISTIC = ["train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "lr", "FLOPS",
                 "n_params"]


def _plan(run_dir: Path, epochs: int, n_tasks: int = 3, fidelities: str = "1,4,0.25") -> Plan:
    proto = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=epochs)
    plan = make_plan(proto, n_tasks, min_per_fidelity=1, repeat_share=0.0, fidelities=parse_fidelities(fidelities),
                     progress=False)
    plan.save(run_dir)
    return plan


def _run(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from generation.run import run

    monkeypatch.setenv("JAHS_NO_MPI", "1")
    lines: list[str] = []
    run(run_dir, log=lines.append)
    return lines


def _cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from generation.__main__ import main

    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse refusals exit from parse_args
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def finished_run(run_dir: Path) -> Path:
    """Plan and train, in this process, a finished real run: 3 tasks x 3 epochs."""
    from generation.run import run

    _plan(run_dir, epochs=3)
    os.environ["JAHS_NO_MPI"] = "1"
    try:
        run(run_dir, log=lambda s: None)
    finally:
        del os.environ["JAHS_NO_MPI"]
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished real run (do not modify; copy it)."""
    return finished_run(tmp_path_factory.mktemp("trained") / "run")


# ------------------------------------------------------------------------------------------- numbers refused
PLAN = ["plan", "--estimate", "--tasks", "4", "--min-per-fidelity", "1", "--fidelities", "1,4,0.25"]
REFUSALS = [  # (arguments, first word of the refusal, what the one line names)
    ([*PLAN, "--cores", "0"], "plan", "--cores 0: allowed: a positive integer"),
    ([*PLAN, "--tasks", "0", "--min-per-fidelity", "0"], "plan", "--tasks 0: allowed"),
    ([*PLAN, "--min-per-fidelity", "-5"], "plan", "--min-per-fidelity -5: allowed: an integer >= 0"),
    ([*PLAN, "--cheap-bias", "nan"], "plan", "--cheap-bias nan: allowed: a finite number in [-10, 10]"),
    ([*PLAN, "--cheap-bias", "inf"], "plan", "--cheap-bias inf: allowed"),
    ([*PLAN, "--repeat-share", "1"], "plan", "--repeat-share 1: allowed: a finite number in [0, 1)"),
    ([*PLAN, "--seed", "-1"], "plan", "--seed -1: allowed: an integer >= 0"),
    ([*PLAN, "--tasks", "2.5"], "plan", "--tasks '2.5' is not an integer"),
    ([*PLAN, "--n-train", "100000"], "plan", "n_train=100000: allowed: at most 50000"),
    ([*PLAN, "--n-valid", "60000"], "plan", "n_valid=60000: allowed: fewer than the 60000"),
    ([*PLAN, "--n-test", "20000"], "plan", "n_test=20000: allowed: at most 10000"),
    ([*PLAN, "--split-seed", "-1"], "plan", "split_seed=-1: allowed: an integer >= 0"),
    ([*PLAN, "--max-epochs", "0"], "plan", "max_epochs=0"),
    ([*PLAN[:1], *PLAN[2:], "--out", "{file}"], "plan", "is a file; allowed: a run folder"),
    (["plan-seeds", "{run}", "--tasks", "0"], "plan", "--tasks 0: allowed"),
    (["plan-seeds", "{run}", "--seed", "0"], "plan", "--seed 0: allowed: a positive integer"),
    (["plan-seeds", "{run}", "--cores", "-2"], "plan", "--cores -2: allowed"),
    (["plan-protocol", "{file}", "--protocol-of", "{run}", "--estimate", "--max-epochs", "0"], "plan",
     "max_epochs=0"),
    (["plan-protocol", "{file}", "--protocol-of", "{run}", "--max-epochs", "5"], "plan", "--out RUN_DIR is required"),
    (["plan-protocol", "{file}", "--protocol-of", "{run}", "--max-epochs", "5", "--configs", "0"], "plan",
     "--configs 0: allowed"),
    (["plan-protocol", "{file}", "--protocol-of", "{run}", "--max-epochs", "5", "--seed", "-1"], "plan",
     "--seed -1: allowed"),
    (["run", "{run}", "--max-tasks", "-1"], "run", "--max-tasks -1: allowed: a positive integer"),
    (["run", "{run}", "--max-tasks", "0"], "run", "--max-tasks 0: allowed"),
    (["run", "{run}", "--threads", "0"], "run", "--threads 0: allowed: a positive integer"),
    (["run", "{run}", "--time-limit", "0"], "run", "--time-limit 0: allowed: a finite number > 0"),
    (["run", "{run}", "--time-limit", "nan"], "run", "--time-limit nan: allowed"),
    (["fit", "{file}", "-o", "{tmp}/b", "--folds", "1"], "fit", "--folds 1: allowed: an integer >= 2"),
    (["fit", "{file}", "-o", "{tmp}/b", "--trials", "0"], "fit", "--trials 0: allowed: an integer in [1, 6]"),
    (["fit", "{file}", "-o", "{tmp}/b", "--speed-window", "-1"], "fit", "--speed-window -1: allowed"),
    (["fit", "{file}", "-o", "{tmp}/b", "--optimum-rows", "-1"], "fit", "--optimum-rows -1: allowed"),
    (["fit", "{tmp}/none.parquet", "-o", "{tmp}/b"], "fit", "none.parquet does not exist: allowed"),
    (["fit", "{file}", "-o", "{tmp}/b", "--run-dir", "{tmp}"], "fit", "plan.json does not exist: allowed"),
    (["merge", "{tmp}/nowhere", "-o", "{tmp}/t.parquet"], "merge", "has no shards/ folder: allowed"),
    (["merge", "{run}", "-o", "{tmp}"], "merge", "is a folder: allowed"),
    (["costmodel", "--configs-per-fidelity", "0"], "costmodel", "--configs-per-fidelity 0: allowed"),
    (["costmodel", "--images", "5"], "costmodel", "n_train=5"),
]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("planned") / "run"
    _plan(run_dir, epochs=2)
    return run_dir


@pytest.mark.parametrize(("args", "cmd", "names"), REFUSALS, ids=[" ".join(a[:1] + a[-2:]) for a, *_ in REFUSALS])
def test_bad_numbers_and_paths_are_refused_in_one_line(args: list[str], cmd: str, names: str, planned: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    before = sorted(p.name for p in planned.iterdir())
    argv = [a.format(file=tmp_path / "file", run=planned, tmp=tmp_path) for a in args]
    rc, out, err = _cli(argv, capsys)
    assert rc == 2 and err.startswith(f"{cmd} refused: ") and err.count("\n") == 1, err
    assert names in err and "Traceback" not in err
    assert sorted(p.name for p in planned.iterdir()) == before and not (tmp_path / "b").exists()  # nothing done


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([int, float]), lo=st.none() | st.integers(-5, 5), span=st.none() | st.integers(0, 9),
       lo_open=st.booleans(), hi_open=st.booleans(),
       value=st.integers(-20, 20) | st.floats() | st.booleans() | st.text(max_size=3))
def test_a_limit_is_one_rule_for_the_api_and_the_command_line(kind: type, lo: int | None, span: int | None,
                                                             lo_open: bool, hi_open: bool, value: object) -> None:
    import argparse

    hi = None if span is None else (lo or 0) + span
    limit = Limit(kind, lo, hi, lo_open, hi_open)
    numeric = not isinstance(value, (bool, str)) and (kind is float or isinstance(value, int))
    inside = numeric and np.isfinite(float(value)) and (
        lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or (value < hi if hi_open else
                                                                                    value <= hi))
    if inside:
        assert limit.check("x", value) == value and limit(str(value)) == value
    else:
        with pytest.raises(PlanError, match="^x=.*: allowed: "):
            limit.check("x", value, PlanError)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = limit(str(value))
        except argparse.ArgumentTypeError as e:
            assert "allowed: " + limit.allowed() in str(e)
        else:
            assert limit.ok(parsed)


def test_the_python_api_refuses_the_same_numbers(tmp_path: Path) -> None:
    from generation.run import run

    proto = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=2)
    for kw, names in [({"n_tasks": 0}, "n_tasks=0"), ({"cheap_bias": float("nan")}, "cheap_bias=nan"),
                      ({"min_per_fidelity": -5}, "min_per_fidelity=-5"), ({"seed": -1}, "seed=-1"),
                      ({"n_tasks": True}, "n_tasks=True")]:
        with pytest.raises(PlanError, match=f"^{names}: allowed: "):
            make_plan(proto, **{"n_tasks": 4, "min_per_fidelity": 1, "progress": False, **kw})
    with pytest.raises(PlanError, match="split_seed=-1"):
        make_plan(Protocol("mnist", n_train=256, split_seed=-1), 4, min_per_fidelity=1, progress=False)
    for kw, names in [({"threads": 0}, "threads=0"), ({"max_tasks": -1}, "max_tasks=-1"),
                      ({"time_limit_s": float("inf")}, "time_limit_s=inf")]:
        with pytest.raises(PlanError, match=f"^{names}: allowed: "):
            run(tmp_path, **kw)
    from generation.fit import fit_bundle

    for kw, names in [({"trials": 7}, "trials=7"), ({"trials": 0}, "trials=0"), ({"folds": 1}, "folds=1")]:
        with pytest.raises(ValueError, match=f"^{names}: allowed: "):  # refused, not capped to the 6 candidates
            fit_bundle(tmp_path / "table.parquet", tmp_path / "bundle", **kw)


# ------------------------------------------------------------------------------------------------- re-plans
def test_a_run_folder_keeps_its_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    plan = _plan(run_dir, epochs=3)
    text = (run_dir / "plan.json").read_text()
    plan.save(run_dir)  # the same plan again: a no-op
    assert (run_dir / "plan.json").read_text() == text
    five = make_plan(Protocol(**{**plan.protocol.as_dict(), "max_epochs": 5}), 3, min_per_fidelity=1,
                     repeat_share=0.0, fidelities=parse_fidelities("1,4,0.25"), progress=False)
    with pytest.raises(PlanError, match=r"already holds another plan \(max_epochs 3 -> 5\)"):
        five.save(run_dir)
    other = make_plan(plan.protocol, 3, seed=9, min_per_fidelity=1, repeat_share=0.0,
                      fidelities=parse_fidelities("1,4,0.25"), progress=False)
    with pytest.raises(PlanError, match="3 only in the old plan, 3 only in the new one"):
        other.save(run_dir)
    with pytest.raises(PlanError, match="already holds another plan"):  # extends: only with the old tasks first
        other.save(run_dir, extends=True)
    assert (run_dir / "plan.json").read_text() == text
    args = ["plan", "--tasks", "3", "--min-per-fidelity", "1", "--repeat-share", "0", "--fidelities", "1,4,0.25",
            "--n-train", "256", "--n-valid", "128", "--n-test", "128", "--out", run_dir]
    rc, out, err = _cli([*args, "--max-epochs", "3"], capsys)
    assert rc == 0 and "already holds this plan; left as it is" in out
    rc, out, err = _cli([*args, "--max-epochs", "5"], capsys)
    assert rc == 2 and err.splitlines()[-1].startswith("plan refused: ") and "max_epochs 3 -> 5" in err  # after tqdm
    rc, out, err = _cli(["plan-seeds", run_dir, "--tasks", "2"], capsys)  # plan-seeds extends the plan in place
    assert rc == 0 and len(Plan.load(run_dir).tasks) == 5
    bare = tmp_path / "bare"
    (bare / "shards").mkdir(parents=True)
    (bare / "shards" / "x.parquet").write_bytes(b"")
    with pytest.raises(PlanError, match="holds shards but .* has no plan.json"):
        plan.save(bare)


@pytest.mark.slow
def test_replanning_a_run_retrains_every_shard_of_the_old_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Before: plan 3 epochs, run, re-plan 5 epochs into the folder, run: 3-epoch shards counted as done, the
    table short of epochs and merge reporting 0 unfinished. Now the re-plan is refused; a plan.json replaced by
    hand (or by an older jahs-gym) gets its stale shards moved aside and trained again."""
    run_dir = tmp_path / "run"
    _plan(run_dir, epochs=1)
    _run(run_dir, monkeypatch)
    assert len(merge([run_dir])[0]) == 3
    args = ["plan", "--tasks", "3", "--min-per-fidelity", "1", "--repeat-share", "0", "--fidelities", "1,4,0.25",
            "--n-train", "256", "--n-valid", "128", "--n-test", "128", "--max-epochs", "2", "--out", run_dir]
    rc, _, err = _cli(args, capsys)
    assert rc == 2 and "already holds another plan (max_epochs 1 -> 2)" in err
    _plan(tmp_path / "elsewhere", epochs=2)
    shutil.copy(tmp_path / "elsewhere" / "plan.json", run_dir / "plan.json")  # what the old `plan` did
    log = _run(run_dir, monkeypatch)
    rejected = sorted((run_dir / "shards" / "rejected").glob("*.json"))
    assert len(rejected) == 3 and sum("moved to shards/rejected/" in line for line in log) == 3
    assert all("1 epoch(s) where the plan trains 2" in " ".join(json.loads(p.read_text())["problems"])
               for p in rejected)
    df, rep = merge([run_dir])
    assert len(df) == 6 and df.groupby("task_id")["epoch"].max().eq(2).all() and not rep.unfinished


@pytest.mark.slow
def test_a_truncated_or_empty_shard_is_named_then_trained_again(trained: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: never retrained, and merge died with ArrowInvalid. Now merge names them and run retrains them
    to the same numbers."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    a, b, _ = sorted((run_dir / "shards").glob("*.parquet"))
    original = {p.stem: pd.read_parquet(p) for p in (a, b)}
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    b.write_bytes(b"")
    with pytest.raises(MergeError) as err:
        merge([run_dir])
    assert f"{a}: not a readable parquet file" in str(err.value) and f"{b}: empty file (0 bytes)" in str(err.value)
    log = _run(run_dir, monkeypatch)
    assert sum("moved to shards/rejected/" in line for line in log) == 2
    assert any("2 to run" in line for line in log)
    df, rep = merge([run_dir])
    assert len(df) == 9 and not rep.unfinished and rep.duplicates_dropped == 0
    for tid, before in original.items():
        pd.testing.assert_frame_equal(df[df["task_id"] == tid][DETERMINISTIC].reset_index(drop=True),
                                      before[DETERMINISTIC])
    assert {p.name.rsplit(".", 2)[0] for p in (run_dir / "shards" / "rejected").glob("*.parquet")} == set(original)


# ----------------------------------------------------------------------------------------------------- lock
HOLD = ("import sys, time; from generation.runlock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(600)")


def _holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_runner_is_refused_and_a_killed_holder_frees_the_folder(
        planned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAHS_NO_MPI", "1")
    run_dir = tmp_path / "run"
    shutil.copytree(planned, run_dir)
    proc = _holder(run_dir)
    try:
        rc, out, err = _cli(["run", run_dir], capsys)
        assert rc == 2 and err.startswith(f"run refused: {run_dir} is being run by pid {proc.pid} on ")
        assert err.count("\n") == 1 and not (run_dir / "shards").exists()  # refused before touching anything
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunLock(run_dir) as lock:  # the OS released the killed holder's lock: no stale lock to clean up
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def _generation_run(run_dir: Path, mpi: int = 0) -> list[str]:
    cmd = [sys.executable, "-m", "generation", "run", str(run_dir)]
    if mpi:
        exe = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
        cmd = [exe, "-n", str(mpi), *cmd]
    return cmd


@pytest.mark.slow
def test_a_runner_killed_with_sigkill_leaves_the_folder_resumable(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _plan(run_dir, epochs=3, n_tasks=6, fidelities="1,8,0.5")
    env = {**os.environ, "JAHS_NO_MPI": "1"}
    first = subprocess.Popen(_generation_run(run_dir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run_dir / "ckpt").glob("*.pt")):
        time.sleep(0.05)
    second = subprocess.run(_generation_run(run_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert second.returncode == 2 and f"is being run by pid {first.pid}" in second.stderr
    assert "[rank 0]" not in second.stdout  # it claimed no task
    third = subprocess.run(_generation_run(run_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    df, rep = merge([run_dir])
    assert len(df) == 18 and rep.duplicates_dropped == 0 and not rep.unfinished


@pytest.mark.slow
def test_an_mpi_job_is_refused_once_while_another_runner_holds_the_folder(planned: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(planned, run_dir)
    proc = _holder(run_dir)
    try:
        r = subprocess.run(_generation_run(run_dir, mpi=2), cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    both = r.stdout + r.stderr
    assert r.returncode != 0 and both.count("run refused: ") == 1 and f"pid {proc.pid}" in both
    assert "fatal" not in both and not (run_dir / "shards").exists()

