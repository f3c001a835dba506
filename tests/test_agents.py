"""Every agent runs an episode; the harness runs end to end, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.bench import AGENTS, NEEDS, RESULT_COLUMNS, leaderboard, main, run_one
from agents.common import Protocol

CHEAP = [a for a in AGENTS if a not in ("ppo", "a2c", "dqn")]


def _no_wall(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.mark.parametrize("agent", CHEAP)
def test_every_agent_runs_a_short_episode(tiny_data_env: str, agent: str, tmp_path: Path) -> None:
    if agent in NEEDS:  # a third-party optimiser: skipped only where its extra is not installed
        pytest.importorskip(NEEDS[agent][0])
    from jahs_gym.bundle import load_bundle

    # a few mean full-fidelity evaluations (full-fidelity agents: random, evolution), many cheap ones
    budget = 4 * load_bundle(tiny_data_env).manifest.full_fidelity_cost_s
    proto = Protocol(task=tiny_data_env, budget=budget, max_steps=40)
    rows = run_one(agent, 0, proto, tmp_path)
    assert rows, f"{agent} evaluated nothing"
    df = pd.DataFrame(rows)
    assert (df["cumulative_cost"].diff().dropna() >= 0).all() and df["cumulative_cost"].max() <= budget
    assert (df["incumbent_valid_acc"].diff().dropna() >= 0).all()
    assert _no_wall(rows) == _no_wall(run_one(agent, 0, proto, tmp_path))  # same seed, same episode


def test_multi_fidelity_agents_climb_the_ladder(tiny_data_env: str, tmp_path: Path) -> None:
    rows = pd.DataFrame(run_one("hyperband", 1, Protocol(task=tiny_data_env, budget=50.0, max_steps=200), tmp_path))
    assert set(zip(rows["N"], rows["W"])) >= {(1, 4), (3, 8), (5, 16)}
    assert rows.iloc[0]["N"] == 1  # the first bracket starts on the cheapest rung


@pytest.mark.slow
def test_rl_agents_train_and_evaluate(tiny_data_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.bench import train_policies

    monkeypatch.setenv("JAHS_GYM_CACHE", str(tmp_path / "cache"))  # the signing key (agents/policies.py)
    proto = Protocol(task=tiny_data_env, budget=3.0, max_steps=30)
    for algo in ("ppo", "dqn"):
        train_policies([algo], proto, tmp_path, 512)
        assert len(list(tmp_path.glob(f"{algo}-*.json"))) == 1  # its signed stamp: what it was trained for
        rows = run_one(algo, 0, proto, tmp_path, 512)
        again = run_one(algo, 0, proto, tmp_path, 512)
        assert rows and _no_wall(rows) == _no_wall(again)


def _budget(task: str, evaluations: float = 4) -> str:
    """A budget of a few mean full-fidelity evaluations (random search evaluates at full fidelity only)."""
    from jahs_gym.bundle import load_bundle

    return str(evaluations * load_bundle(task).manifest.full_fidelity_cost_s)


def test_harness_end_to_end(tiny_data_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["--task", tiny_data_env, "--agents", "random,successive_halving,ucb", "--seeds", "2", "--workers", "2",
            "--budget", _budget(tiny_data_env), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "the surrogate's optimum test accuracy" in text and "successive_halving" in text
    assert "Pairwise tests" in text and "Holm" in text
    df = pd.read_parquet(out / "results.parquet")
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert set(df["agent"]) == {"random", "successive_halving", "ucb"} and set(df["seed"]) == {0, 1}
    assert (out / "anytime.png").stat().st_size > 10_000 and (out / "leaderboard.md").exists()
    board, pairs = leaderboard(df)
    assert list(board["rank"]) == [1, 2, 3] and (board["seeds"] == 2).all() and len(pairs) == 3
    assert board["avg_rank"].between(1, 3).all()
    out2 = tmp_path / "again"
    assert main(argv[:-1] + [str(out2), "--workers", "1"]) == 0
    again = pd.read_parquet(out2 / "results.parquet")
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"), again.drop(columns="wall_s"))
    assert main(["--task", tiny_data_env, "--agents", "random,alphazero"]) == 2


@pytest.mark.parametrize("argv", [["--agents", ""], ["--seeds", "0"], ["--seeds", "-2"], ["--budget", "-5"],
                                  ["--budget", "0"], ["--budget", "nan"], ["--task", "nope"],
                                  ["--protocol", "jahs", "--budget", "3"], ["--rl-timesteps", "0"]])
def test_harness_refuses_bad_arguments(tiny_data_env: str, tmp_path: Path, argv: list[str]) -> None:
    full = ["--task", tiny_data_env, "--agents", "random", "--out", str(tmp_path)]
    for i in range(0, len(argv), 2):  # the bad value replaces the default one
        if argv[i] in full:
            full[full.index(argv[i]) + 1] = argv[i + 1]
        else:
            full += argv[i:i + 2]
    try:
        rc = main(full)
    except SystemExit as e:  # argparse: "error: argument --seeds: ..."
        rc = e.code
    assert rc == 2 and not (tmp_path / "results.parquet").exists()


def test_jahs_protocol(tiny_data_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jahs_gym.bundle import load_bundle

    unit = load_bundle(tiny_data_env).manifest.full_fidelity_cost_s
    out = tmp_path / "jahs"
    assert main(["--task", tiny_data_env, "--agents", "random,successive_halving", "--seeds", "3", "--workers", "1",
                 "--protocol", "jahs", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"budget 100 mean full-fidelity evaluations ({100 * unit:.0f} simulated s" in text
    df = pd.read_parquet(out / "results.parquet")
    assert df["cumulative_cost"].max() <= 100 * unit + 1e-6
    # random search at full fidelity spends the budget on about 100 evaluations of that mean cost
    rnd = df[df["agent"] == "random"].groupby("seed")["cumulative_cost"].max()
    assert (rnd > 50 * unit).all()


def test_regret_is_against_the_surrogates_optimum(tiny_data_env: str, tmp_path: Path) -> None:
    from jahs_gym.bundle import load_bundle

    man = load_bundle(tiny_data_env).manifest
    best = man.regret_reference
    assert best == man.optimum["test_acc"]["value"] and best >= man.optimum["test_acc"]["random_best"]
    rows = pd.DataFrame(run_one("random", 3, Protocol(task=tiny_data_env, budget=3.0), tmp_path))
    np.testing.assert_allclose(rows["regret"], best - rows["incumbent_test_acc"])
    assert (rows["regret"] >= 0).all()


@pytest.mark.slow
def test_harness_under_mpiexec(tiny_data_env: str, tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    out = tmp_path / "mpi"
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "agents.bench", "--task", tiny_data_env, "--agents",
                        "random,ucb", "--seeds", "3", "--budget", _budget(tiny_data_env), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(out / "results.parquet")
    assert set(zip(df["agent"], df["seed"])) == {(a, s) for a in ("random", "ucb") for s in range(3)}
    single = tmp_path / "single"
    assert main(["--task", tiny_data_env, "--agents", "random,ucb", "--seeds", "3", "--budget", _budget(tiny_data_env),
                 "--workers", "1", "--out", str(single)]) == 0
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"),
                                  pd.read_parquet(single / "results.parquet").drop(columns="wall_s"))


def test_bandits_draw_their_arm_pool_from_the_seed(tiny_data_env: str, tmp_path: Path) -> None:
    """Seeds are independent replications: with one shared pool every seed would find the same best arm."""
    from agents.bench import make_agent

    proto = Protocol(task=tiny_data_env, budget=1e9, max_steps=300)
    pools = []
    for s in range(3):
        env = proto.make_env("discrete", arm_seed=s)
        pools.append(tuple(map(tuple, np.stack(env.codec.arms, axis=1).tolist())))
        rows = pd.DataFrame(run_one("ucb", s, proto, tmp_path))
        # what the harness's episode saw is the pool of this seed: its valid accuracies are that pool's
        env.reset(seed=s)
        pool_valid = {round(env.step(a)[4]["valid_acc"], 9) for a in range(env.action_space.n)}
        assert set(rows["valid_acc"].round(9)) <= pool_valid
    assert len(set(pools)) == 3 and make_agent("ucb", tmp_path).arms_per_seed


def test_an_episode_that_finds_nothing_counts_as_the_worst_regret(tiny_data_env: str, tmp_path: Path) -> None:
    """A first evaluation that already costs more than the budget reveals nothing: the episode is one row of regret =
    the reference (not missing from the statistics, which would flatter its agent), and the report says so."""
    from agents.report import report
    from jahs_gym.bundle import load_bundle

    man = load_bundle(tiny_data_env).manifest
    tight = Protocol(task=tiny_data_env, budget=1e-6, max_steps=40)  # nothing fits
    empty = run_one("evolution", 0, tight, tmp_path)
    assert len(empty) == 1 and empty[0]["step"] == 0 and empty[0]["regret"] == man.regret_reference
    proto = Protocol(task=tiny_data_env, budget=4 * man.full_fidelity_cost_s, max_steps=40)
    rows = [*empty, *run_one("evolution", 1, proto, tmp_path), *run_one("random", 0, proto, tmp_path),
            *run_one("random", 1, proto, tmp_path)]
    board, pairs = leaderboard(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))
    assert board.loc["evolution", "seeds"] == 2 and board.loc["evolution", "empty_episodes"] == 1
    assert board.loc["random", "empty_episodes"] == 0
    from agents.plot import anytime

    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    first = df.loc[df["step"] > 0, "cumulative_cost"].min()  # the grid starts at the first real evaluation
    grid, mean, _ = anytime(df, proto.budget)["evolution"]
    assert grid[0] == pytest.approx(max(first, proto.budget * 1e-4)) and np.isfinite(mean).any()
    finals = pd.DataFrame(rows).sort_values("step").groupby(["agent", "seed"])["regret"].last()
    assert finals[("evolution", 0)] == man.regret_reference
    assert board.loc["evolution", "final_regret_mean"] == pytest.approx(finals["evolution"].mean())

    class Args:
        task, budget, noise, backend, no_continuation = tiny_data_env, None, False, "surrogate", False

    text = report(board, pairs, Args(), 1.0, man.regret_reference, man, None, 1.0)
    assert "already cost more than the budget (nothing found; final regret = the reference): evolution 1" in text
