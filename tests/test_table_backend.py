"""JAHS-v0 on a table's arms (backend="table" / "surrogate_arms"), the shared run lookup, and seed-mean labels."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest

from jahs_gym.transforms import forward, inverse

# ------------------------------------------------------------------------------------------ seed-mean labels


def test_seed_means_average_in_the_fitted_space() -> None:
    from generation.labels import label_index, seed_means
    from tests.conftest import synthetic_table

    df = synthetic_table(n_configs=40, epochs=3)
    out = seed_means(df, ["valid_acc", "runtime"])
    assert len(out) == df.groupby(["config_id", "fidelity_id", "epoch"]).ngroups
    two = out[out["n_seeds"] == 2]
    assert len(two) > 0 and set(out["n_seeds"]) == {1, 2}
    row = two.iloc[0]
    runs = df[(df["config_id"] == row["config_id"]) & (df["epoch"] == row["epoch"])]
    assert row["valid_acc"] == pytest.approx(inverse("logit", forward("logit", runs["valid_acc"].to_numpy()).mean()))
    assert row["runtime"] == pytest.approx(float(np.exp(np.log(runs["runtime"]).mean())))
    one = out[out["n_seeds"] == 1].iloc[0]
    src = df[(df["config_id"] == one["config_id"]) & (df["epoch"] == one["epoch"])]
    assert one["valid_acc"] == pytest.approx(float(src["valid_acc"].iloc[0]))
    lab, first, n = label_index(df)
    assert (first[lab] <= np.arange(len(df))).all() and n.sum() == len(df)


def test_seed_mean_ceiling_lies_between_single_and_two_seed_labels() -> None:
    from generation.labels import noise_ceiling
    from tests.conftest import synthetic_table

    df = synthetic_table(n_configs=200, epochs=3)
    one, table, two = (noise_ceiling(df, "valid_acc", "logit", seeds=s) for s in (1, "table", 2))
    assert one["r2"] <= table["r2"] <= two["r2"]
    with pytest.raises(ValueError, match="seeds=0"):
        noise_ceiling(df, "valid_acc", "logit", seeds=0)


def test_fit_reports_quality_against_seed_means_and_single_runs(tmp_path) -> None:
    from generation.fit import fit_bundle
    from tests.conftest import synthetic_table

    synthetic_table(n_configs=60, epochs=3).to_parquet(tmp_path / "t.parquet")
    ms = {}
    for labels in ("seed_mean", "single"):
        ms[labels] = fit_bundle(tmp_path / "t.parquet", tmp_path / labels, folds=3, trials=1, progress=False,
                                metrics=["valid_acc"], max_trees=40, optimum_rows=0, labels=labels)
    mean_fit, single_fit = ms["seed_mean"], ms["single"]
    assert mean_fit["fit"]["labels"] == "seed_mean" and single_fit["fit"]["labels"] == "single"
    assert mean_fit["metrics"]["valid_acc"]["rows"] == mean_fit["fit"]["label_rows"] < len(pd.read_parquet(
        tmp_path / "t.parquet"))
    for m in (mean_fit, single_fit):
        e = m["metrics"]["valid_acc"]
        assert {"r2", "kendall_tau"} <= set(e["quality"]) and {"r2", "kendall_tau"} <= set(e["quality_single_run"])
        assert e["quality"]["n"] == m["fit"]["label_rows"]
        assert e["ceiling"]["seed_mean"]["r2"] >= e["ceiling"]["r2"]
    with pytest.raises(ValueError, match="labels='mean'"):
        fit_bundle(tmp_path / "t.parquet", tmp_path / "x", metrics=["valid_acc"], labels="mean", progress=False)


# ------------------------------------------------------------------------------------------ the run lookup


def test_run_table_holds_every_row(tiny_bundle) -> None:
    from jahs_gym.bundle import Bundle
    from jahs_gym.table import RunTable

    b = Bundle(tiny_bundle)
    rt = RunTable(b, ("valid_acc", "cpu_runtime"))
    df = pd.read_parquet(tiny_bundle / "table.parquet")
    assert len(rt) == df.groupby(["config_id", "N", "W", "Resolution"]).ngroups
    for r in df.sample(20, random_state=0).itertuples():
        run = rt.find(r.config_id, r.N, r.W, r.Resolution)
        slot = list(rt.seeds[run]).index(r.seed)
        assert rt.curves[run, slot, r.epoch - 1].tolist() == [r.valid_acc, r.cpu_runtime]
    with pytest.raises(KeyError, match="not in the"):
        rt.find("nope", 1, 4, 0.25)
    with pytest.raises(ValueError):
        rt.curves[0, 0, 0, 0] = 1.0  # read-only: shared by every env of the process


def test_benchmark_table_answers_from_the_lookup(tiny_data_env) -> None:
    import jahs_gym

    b = jahs_gym.Benchmark(tiny_data_env, kind="table")
    df = pd.read_parquet(b.bundle.table_path())
    row = df[df["seed"] == df.groupby("task_id")["seed"].transform("min")].iloc[5]
    cfg = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in
           (*jahs_gym.space.CONFIG_KEYS, "N", "W", "Resolution")}
    got = b(cfg, nepochs=int(row["epoch"]))[int(row["epoch"])]
    assert got["valid_acc"] == row["valid_acc"] and got["test_acc"] == row["test_acc"]
    config, res = b.random_sample(random_state=3)
    assert res == b(config, nepochs=max(res))
    assert len(b.table_configs()) == df.groupby(["config_id", "N", "W", "Resolution"]).ngroups
    assert pickle.loads(pickle.dumps(b))(cfg, nepochs=1) == b(cfg, nepochs=1)


# ------------------------------------------------------------------------------------------ the env's arm backends


def _env(task: str, **kw):  # noqa: ANN202
    from jahs_gym.envs import JAHSEnv

    return JAHSEnv(task=task, **kw)


def test_table_backend_returns_measured_curves_and_costs(tiny_data_env) -> None:
    from jahs_gym.table import run_table

    env = _env(tiny_data_env, backend="table", n_epochs=2)
    env.reset(seed=0)
    arms = env.task.arms
    rt = run_table(env.task.bundle, env.task.metrics, "corrected" if env.task.bundle.speed_corrected else "measured")
    one = int(np.flatnonzero(arms.n_seeds == 1)[0])
    _, _, _, _, info = env.step(np.array([one, 1]))
    curve = rt.curves[arms.run_index[one], 0, 1]
    assert info["valid_acc"] == curve[env.task.col["valid_acc"]]
    # every cell one seed measured is that measurement to the bit (not inverse(forward(x)), which CI's CPU
    # rounded an ulp away)
    one_seed = rt.n_seeds == 1
    assert one_seed.any() and np.array_equal(rt.mean[one_seed], rt.curves[one_seed, 0], equal_nan=True)
    assert info["cost"] == curve[env.task.col["cpu_runtime"]]
    assert info["regret"] == pytest.approx(arms.reference - curve[env.task.col["test_acc"]])
    assert info["fidelity"]["N"] == rt.fidelities.iloc[arms.run_index[one]]["N"]
    # continuation: the same run one epoch further pays only the difference; fewer epochs are free
    env = _env(tiny_data_env, backend="table", n_epochs=2, continuation=True)
    env.reset(seed=0)
    first = env.step(np.array([one, 0]))[4]
    second = env.step(np.array([one, 1]))[4]
    assert second["cost"] == pytest.approx(second["metrics"]["cpu_runtime"] - first["metrics"]["cpu_runtime"])
    assert env.step(np.array([one, 0]))[4]["cost"] == 0.0


def test_table_noise_is_one_real_seed_and_no_noise_the_seed_mean(tiny_data_env) -> None:
    env = _env(tiny_data_env, backend="table", n_epochs=2, noise=True)
    arms = env.task.arms
    two = np.flatnonzero(arms.n_seeds == 2)
    assert len(two)
    j = env.task.col["valid_acc"]
    seen = set()
    for seed in range(12):
        env.reset(seed=seed)
        a = env.step(np.array([int(two[0]), 1]))[4]["valid_acc"]
        assert a in arms.curves[two[0], :, 1, j].tolist()  # a measured value, not a blend
        assert env.step(np.array([int(two[0]), 1]))[4]["valid_acc"] == a  # the same run: the same seed
        seen.add(a)
    assert len(seen) == 2 or arms.curves[two[0], 0, 1, j] == arms.curves[two[0], 1, 1, j]
    quiet = _env(tiny_data_env, backend="table", n_epochs=2)
    quiet.reset(seed=0)
    mean = quiet.step(np.array([int(two[0]), 1]))[4]["valid_acc"]
    assert mean == pytest.approx(inverse("logit", forward("logit", arms.curves[two[0], :, 1, j]).mean()))


def test_surrogate_arms_are_the_surrogates_predictions(tiny_data_env) -> None:
    import jahs_gym

    env = _env(tiny_data_env, backend="surrogate_arms", n_epochs=2)
    env.reset(seed=0)
    info = env.step(np.array([3, 1]))[4]
    cfg = {**info["config"], **{k: info["fidelity"][k] for k in ("N", "W", "Resolution")}}
    want = jahs_gym.Benchmark(tiny_data_env)(cfg, nepochs=info["fidelity"]["epoch"])[info["fidelity"]["epoch"]]
    assert info["valid_acc"] == pytest.approx(want["valid_acc"], rel=1e-6)
    assert env.task.regret_reference == pytest.approx(float(env.task.arms.clean[..., env.task.col["test_acc"]].max()))


@pytest.mark.parametrize("backend", ["table", "surrogate_arms"])
@pytest.mark.parametrize("noise", [False, True])
def test_arm_backends_single_and_vector_agree_and_regret_is_never_negative(tiny_data_env, backend, noise) -> None:
    from jahs_gym.envs import JAHSVectorEnv

    kw = dict(backend=backend, noise=noise, continuation=True, n_epochs=2)
    vec = JAHSVectorEnv(3, task=tiny_data_env, **kw)
    singles = [_env(tiny_data_env, **kw) for _ in range(3)]
    vec.reset(seed=10)
    for i, e in enumerate(singles):
        e.reset(seed=10 + i)
    rng = np.random.default_rng(0)
    done = np.zeros(3, bool)
    for _ in range(40):
        acts = np.stack([rng.integers(len(singles[0].task.arms), size=3), rng.integers(2, size=3)], axis=1)
        obs, rew, term, trunc, info = vec.step(acts)
        for i, e in enumerate(singles):
            if done[i]:
                e.reset()
                continue
            o, r, t, tr, inf = e.step(acts[i])
            assert (o == obs[i]).all() and r == rew[i] and t == term[i]
            if "regret" in inf:
                assert inf["regret"] == info["regret"][i] and inf["regret"] >= 0
        done = term | trunc


def test_arm_backends_refuse_what_they_cannot_do(tiny_data_env) -> None:
    env = _env(tiny_data_env, backend="table", n_epochs=2)
    env.reset(seed=0)
    n = len(env.task.arms)
    with pytest.raises(ValueError, match=rf"action\[0\]={n} \(run\) is out of range; allowed: 0..{n - 1}"):
        env.step(np.array([n, 0]))
    with pytest.raises(ValueError, match="expected \\(2,\\) integers"):
        env.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="action_type='box' with a table's arms"):
        _env(tiny_data_env, backend="table", action_type="box")
    with pytest.raises(ValueError, match="backend='tabel' is not allowed"):
        _env(tiny_data_env, backend="tabel")
    d = _env(tiny_data_env, backend="table", action_type="discrete", n_epochs=2)
    d.reset(seed=0)
    assert d.action_space.n == 2 * n and d.step(2 * 4 + 1)[4]["fidelity"]["epoch"] == 2


def test_arm_env_checkers_copies_and_pickles(tiny_data_env) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = _env(tiny_data_env, backend="table", n_epochs=2, noise=True)
    check_env(env, skip_render_check=True)
    sb3_check(_env(tiny_data_env, backend="table", n_epochs=2), warn=False)
    env.reset(seed=4)
    env.step(np.array([2, 0]))
    twins = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    for a in ([5, 1], [2, 1], [7, 0]):
        want = env.step(np.array(a))
        for t in twins:
            got = t.step(np.array(a))
            assert (got[0] == want[0]).all() and got[1:4] == want[1:4]


@pytest.mark.parametrize("name", ["random", "successive_halving", "hyperband", "evolution", "ucb", "thompson",
                                  "optuna_tpe"])
def test_arm_agents_run_an_episode(tiny_data_env, name) -> None:
    from agents.bench import run_one
    from agents.common import Protocol

    rows = run_one(name, 1, Protocol(task=tiny_data_env, max_steps=60, backend="table"), None)
    assert rows and all(r["regret"] >= 0 for r in rows)


def test_bench_refuses_agents_without_an_arm_version(tiny_data_env, capsys) -> None:
    from agents.bench import main

    assert main(["--task", tiny_data_env, "--backend", "table", "--agents", "random,ppo", "--seeds", "2"]) == 2
    assert "have no arm-space version" in capsys.readouterr().err


def test_surrogate_validity_compares_the_two_backends(tiny_data_env, tmp_path) -> None:
    import json

    from benchmarks.surrogate_validity import main

    assert main(["--task", tiny_data_env, "--seeds", "3", "--workers", "1", "--agents", "random,evolution,ucb",
                 "--json", str(tmp_path / "v.json")]) == 0
    r = json.loads((tmp_path / "v.json").read_text())
    assert set(r["final_regret"]) == {"table", "surrogate_arms"} and r["seeds"] == 3
    assert -1 <= r["kendall_tau"] <= 1 and r["mean_abs_diff"] >= 0
