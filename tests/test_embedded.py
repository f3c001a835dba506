"""The shipped bundles and tables (fashion_mnist, the default, and every other embedded task): really trained,
consistent, and answering offline."""

from __future__ import annotations

import doctest
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import jahs_gym
from jahs_gym.bundle import DATA_DIR, Bundle, file_sha256, read_manifest

BUNDLE = DATA_DIR / "fashion_mnist"  # the default task
TASKS = sorted(d.name for d in DATA_DIR.iterdir() if (d / "manifest.json").exists())


@pytest.fixture(scope="module", params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def folder(task: str) -> Path:
    return DATA_DIR / task


@pytest.fixture(scope="module")
def table(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "table.parquet")


def _disconnected(row: pd.Series) -> bool:
    """No path of non-'none' edges from the cell's input (node 1) to its output (node 4)."""
    e = {(1, 2): row["Op1"], (1, 3): row["Op2"], (1, 4): row["Op3"], (2, 3): row["Op4"], (2, 4): row["Op5"],
         (3, 4): row["Op6"]}
    reach = {1}
    for d in (2, 3, 4):
        if any(s in reach and e[(s, d)] != 1 for s in range(1, d)):
            reach.add(d)
    return 4 not in reach


def test_manifest_matches_the_shipped_table(task: str, folder: Path, table: pd.DataFrame) -> None:
    assert "fashion_mnist" in TASKS
    m = read_manifest(folder)
    assert m.table.sha256 == file_sha256(folder / "table.parquet")
    assert m.table.rows == len(table) and m.task == task
    assert m.protocol.raw["n_train"] == 4096 and m.protocol.max_epochs == 10
    assert (folder / "DATA_CARD.md").exists() and m.compute["core_hours"] > 0
    assert set(table["host"]) and (table["torch_version"].str.len() > 0).all()  # real runs, with provenance
    va, rt = m.metrics["valid_acc"], m.metrics["cpu_runtime"]
    assert 0 < va.ceiling["r2"] < 1 and va.ceiling["runs"] >= 20  # noise ceilings from repeated seeds
    assert "r2_transformed" in rt.quality and "r2_transformed" in va.quality  # log and logit: both transformed
    assert m.compute["machines"]  # the hardware the run recorded


def test_accuracy_rises_with_epochs(table: pd.DataFrame) -> None:
    ok = table[table["status"] == "ok"]
    by_epoch = ok.groupby("epoch")["valid_acc"].mean()
    assert by_epoch.iloc[-1] > by_epoch.iloc[0] + 10
    assert (np.diff(by_epoch.to_numpy()) > -1.0).all()  # on average, no epoch loses more than a point


def test_larger_n_and_w_cost_more_runtime(table: pd.DataFrame) -> None:
    last = table[table["epoch"] == table["epoch"].max()]
    ops = last[[f"Op{i}" for i in range(1, 7)]].to_numpy()
    x = np.column_stack([np.ones(len(last)), np.log(last["N"]), np.log(last["W"]), np.log(last["Resolution"]),
                         (ops == 2).sum(1), (ops == 3).sum(1)])
    for col in ("runtime", "cpu_runtime"):
        coef, *_ = np.linalg.lstsq(x, np.log(last[col].to_numpy()), rcond=None)
        assert coef[1] > 0.1 and coef[2] > 0.1 and coef[3] > 0.1, col  # grows with N, W and resolution


def test_all_none_cells_stay_near_chance(table: pd.DataFrame) -> None:
    last = table[table["epoch"] == table["epoch"].max()]
    disc = last[last.apply(_disconnected, axis=1)]
    assert len(disc) >= 3, "the table should hold a few cells whose input cannot reach the output"
    assert disc["valid_acc"].max() < 15 and disc["test_acc"].max() < 15  # chance is 10%
    assert last[~last.index.isin(disc.index)]["valid_acc"].median() > 30


def test_cumulative_runtime_is_the_sum_of_epochs(table: pd.DataFrame) -> None:
    t = table.sort_values(["task_id", "epoch"])
    step = t.groupby("task_id")["runtime"].diff().fillna(t["runtime"])
    parts = t["train_duration"] + t["valid_duration"] + t["test_duration"]
    assert (step >= parts - 1e-9).all() and (step <= 1.05 * parts + 0.05).all()
    cpu_step = t.groupby("task_id")["cpu_runtime"].diff().fillna(t["cpu_runtime"])
    assert (cpu_step > 0).all() and (cpu_step <= 1.05 * step).all()  # CPU seconds never exceed the wall


def test_fresh_install_answers_from_the_shipped_files() -> None:
    bench = jahs_gym.Benchmark("fashion_mnist")
    out = bench({**bench.sample_config(0), "N": 3, "W": 8, "Resolution": 0.5}, nepochs=10)
    assert 0 <= out[10]["valid_acc"] <= 100 and out[10]["runtime"] > 0
    env = gym.make("JAHS-v0")
    obs, info = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and info["task"] == "fashion_mnist"
    assert Bundle(BUNDLE).predictor().backend in ("c", "numpy")


def test_a_wheel_would_ship_every_embedded_file() -> None:
    """pyproject's package-data globs reach every file under jahs_gym/data (a non-editable install gets them all)."""
    import glob

    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    root = Path(jahs_gym.__file__).parent
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["jahs_gym"]
    shipped = {f for p in patterns for f in glob.glob(p, root_dir=root) if (root / f).is_file()}
    present = {str(f.relative_to(root)) for f in (root / "data").rglob("*") if f.is_file()}
    assert present - shipped == set(), f"package-data misses {sorted(present - shipped)}; patterns: {patterns}"
    assert "data/fashion_mnist/models/valid_acc.ubj" in shipped


def test_table_kind_reproduces_the_rows(task: str, table: pd.DataFrame) -> None:
    bench = jahs_gym.Benchmark(task, kind="table")
    row = table[(table["seed"] == 0) & (table["epoch"] == 10)].iloc[0]
    cfg = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in
           ("Op1", "Op2", "Op3", "Op4", "Op5", "Op6", "Activation", "TrivialAugment", "Optimizer", "LearningRate",
            "WeightDecay")}
    got = bench({**cfg, "N": int(row["N"]), "W": int(row["W"]), "Resolution": float(row["Resolution"])}, nepochs=10)
    assert got[10]["valid_acc"] == pytest.approx(row["valid_acc"])


def test_env_docstring_doctest_runs() -> None:
    import jahs_gym.envs.jahs as mod

    failures, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0


@pytest.mark.slow
def test_sb3_ppo_learns_on_the_default_env() -> None:
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make("JAHS-v0")
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, seed=0, device="cpu", verbose=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs)
    assert env.action_space.contains(action)


def test_shipped_speed_factors_cover_the_table(folder: Path, table: pd.DataFrame) -> None:
    """kind='table', timings='corrected' divides by these: one per task, the spread the manifest reports."""
    m = read_manifest(folder)
    sf = pd.read_parquet(folder / m.table.speed_factors).set_index("task_id")
    assert set(sf.index) == set(table["task_id"]) and set(sf.columns) == {"cpu_runtime", "runtime", "latency"}
    for metric in sf.columns:
        p5_p95 = np.log(sf[metric].quantile([0.05, 0.95]).to_numpy())
        np.testing.assert_allclose(p5_p95, m.metrics[metric].speed_correction["factor_log_p5_p95"], atol=1e-3)


def test_surrogate_keeps_the_top_of_the_table(folder: Path, table: pd.DataFrame) -> None:
    """A refit whose test_acc forest flattens the best configs would raise every agent's regret floor."""
    from generation.datacard import top_of_table

    man = read_manifest(folder)
    top = top_of_table(folder, table)
    assert top["label_best"] == man.table.best_test_acc
    # the row rated best by valid_acc is within a few points of the floor that the valid optimum itself leaves
    floor = man.regret_reference - man.optimum["valid_acc"]["test_acc"]
    assert 0 <= top["oracle_regret"] < floor + 3.0
    assert top["top_label"] - top["top_pred"] < 5.0 and top["pred_max"] <= top["label_best"] + 3.0
    assert f"a regret of {top['oracle_regret']:.2f} points" in (folder / "DATA_CARD.md").read_text()


def test_random_task_draws_between_the_embedded_tasks() -> None:
    """A fresh install ships two tasks, so task='random' has a choice; each episode keeps its task's budget."""
    assert {"fashion_mnist", "mnist"} <= set(TASKS)
    env = gym.make("JAHS-v0", task="random")
    seen = {}
    for s in range(20):
        _, info = env.reset(seed=s)
        seen[info["task"]] = info["budget"]
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["task"] in TASKS
    assert {"fashion_mnist", "mnist"} <= set(seen)
    for t, budget in seen.items():
        assert budget == read_manifest(DATA_DIR / t).default_budget_s
