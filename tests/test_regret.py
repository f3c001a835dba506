"""Regret is measured against the surrogate's own optimum: >= 0 by construction, and no output is pinned at
the table's best (predictions are bounded by what a metric can be, not by the table's range)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.common import dict_action
from jahs_gym.bundle import installed_tasks, load_bundle
from jahs_gym.envs import JAHSEnv
from jahs_gym.space import Config, Fidelity, encode, sample_configs

SHIPPED = ["fashion_mnist", "mnist"]


@pytest.mark.parametrize("task", SHIPPED)
def test_no_prediction_sits_on_the_tables_best(task: str) -> None:
    """20,000 random configs at the largest fidelity: none on the table's maximum, none piled up on one value."""
    from jahs_gym.metrics import BY_NAME

    b = load_bundle(task)
    forest = b.predictor()
    for j, m in enumerate(forest.metrics):  # the rule itself: the clip is the metric's physical range
        assert (forest.lo[j], forest.hi[j]) == (BY_NAME[m].lo, BY_NAME[m].hi) == b.output_bounds()[m], m
    assert forest.hi[forest.metrics.index("test_acc")] == 100.0 != b.bounds()["test_acc"][1]
    n = 20_000
    x = encode(sample_configs(n, 0), [Fidelity(N=5, W=16, Resolution=1.0, epoch=b.max_epochs)] * n)
    y = forest.predict(x)
    for m in ("valid_acc", "test_acc"):
        v = y[:, b.metrics.index(m)]
        table_max = b.bounds()[m][1]
        assert (v == table_max).sum() == 0, m
        assert np.unique(v, return_counts=True)[1].max() < n // 100, m
        assert ((v >= 0) & (v <= 100)).all()


@pytest.mark.parametrize("task", SHIPPED)
def test_the_optimum_is_what_the_surrogate_predicts_there(task: str) -> None:
    b = load_bundle(task)
    opt = b.manifest.optimum
    for m in ("test_acc", "valid_acc"):
        e = opt[m]
        x = encode([Config(**e["config"])], [Fidelity(**e["fidelity"])])
        assert b.naive_predictor().predict(x)[0, b.metrics.index(m)] == pytest.approx(e["value"], abs=1e-3)
        assert e["value"] >= e["random_best"]
    assert b.manifest.regret_reference == opt["test_acc"]["value"]


def _episode(env: JAHSEnv, actions: list) -> list[float]:
    out = []
    for a in actions:
        _, _, term, trunc, info = env.step(a)
        if not info["over_budget"]:
            out.append(info["regret"])
        if term or trunc:
            env.reset()
    return out


@pytest.mark.parametrize("task", SHIPPED)
@pytest.mark.parametrize(("action_type", "noise"), [("multidiscrete", False), ("box", True), ("discrete", False)])
def test_regret_is_never_negative_on_long_random_runs(task: str, action_type: str, noise: bool) -> None:
    env = JAHSEnv(task=task, action_type=action_type, noise=noise, budget=1e12, max_steps=3000)
    env.reset(seed=0)
    env.action_space.seed(0)
    regrets = _episode(env, [env.action_space.sample() for _ in range(3000)])
    assert len(regrets) == 3000 and min(regrets) >= 0.0


@pytest.mark.parametrize("task", SHIPPED)
def test_regret_is_never_negative_on_optimised_runs(task: str) -> None:
    """The optimiser's best case: the surrogate's own optima as actions, and hill climbing from them."""
    b = load_bundle(task)
    env = JAHSEnv(task=task, action_type="dict", noise=True, budget=1e12, max_steps=10**6)
    grid = env.task.epoch_grid_list
    opt = b.manifest.optimum

    def act(e: dict) -> dict:
        f = e["fidelity"]
        return dict_action(Config(**e["config"]), f["N"], f["W"], f["Resolution"], grid.index(f["epoch"]))

    env.reset(seed=0)
    _, _, _, _, info = env.step(act(opt["test_acc"]))  # the test optimum first: regret exactly 0 (noise-free)
    assert info["regret"] == pytest.approx(0.0, abs=1e-4) and info["regret"] >= -1e-9
    env.reset(seed=1)
    _, _, _, _, info = env.step(act(opt["valid_acc"]))  # what a validation-driven optimiser finds at best
    assert info["regret"] == pytest.approx(opt["test_acc"]["value"] - opt["valid_acc"]["test_acc"], abs=1e-3)
    # local moves around the valid optimum (what evolution / hill climbing agents do), with noise on
    rng = np.random.default_rng(0)
    base = act(opt["valid_acc"])
    moves = []
    for _ in range(2000):
        a = dict(base)
        k = rng.choice(list(a))
        sp = env.action_space.spaces[k]
        a[k] = np.array([sp.sample()[0]], np.float32) if k in ("LearningRate", "WeightDecay") else int(sp.sample())
        moves.append(a)
    assert min(_episode(env, moves)) >= 0.0


def test_the_tiny_bundle_too(tiny_data_env: str) -> None:
    assert tiny_data_env in installed_tasks()
    env = JAHSEnv(task=tiny_data_env, budget=1e12, max_steps=5000, noise=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    assert min(_episode(env, [env.action_space.sample() for _ in range(5000)])) >= 0.0


def test_the_optimum_search_beats_an_independent_sample_and_is_a_local_maximum(tiny_data_env: str) -> None:
    """generation/optimum.py on the tiny bundle: the value is what the forest predicts at the returned row, at least
    the best of an independent random sample, and no neighbour of the row (the search's moves) predicts more."""
    from generation.optimum import _COLS, _neighbours, _predict, predict_at, search_optimum

    b = load_bundle(tiny_data_env)
    forest = b.predictor()
    for m in ("valid_acc", "test_acc"):
        r = search_optimum(forest, m, b.max_epochs, n_random=20_000, n_starts=50, seed=3)
        assert predict_at(forest, r["config"], r["fidelity"])[m] == pytest.approx(r["value"], abs=1e-9)
        assert r["value"] >= r["random_best"]
        rng = np.random.default_rng(99)
        n = 50_000
        fids = [Fidelity(N=int(rng.choice([1, 3, 5])), W=int(rng.choice([4, 8, 16])),
                         Resolution=float(rng.choice([0.25, 0.5, 1.0])), epoch=int(rng.integers(1, b.max_epochs + 1)))
                for _ in range(n)]
        sample = forest.predict(encode(sample_configs(n, 99), fids))[:, forest.metrics.index(m)]
        assert r["value"] >= sample.max()
        c, f = r["config"], r["fidelity"]
        row = {"ops": np.array([[c[k] for k in ("Op1", "Op2", "Op3", "Op4", "Op5", "Op6")]]),
               "act": np.array([["ReLU", "Hardswish", "Mish"].index(c["Activation"])]),
               "ta": np.array([c["TrivialAugment"]]), "lr": np.array([c["LearningRate"]]),
               "wd": np.array([c["WeightDecay"]]), "n": np.array([f["N"]]), "w": np.array([f["W"]]),
               "r": np.array([f["Resolution"]]), "epoch": np.array([f["epoch"]])}
        assert set(row) == set(_COLS)
        nb, _ = _neighbours(row, b.max_epochs)
        assert len(nb["act"]) > 20 and _predict(forest, nb, forest.metrics.index(m)).max() <= r["value"]


def test_the_jahs_protocols_unit_is_the_mean_full_fidelity_cost(tiny_data_env: str) -> None:
    """``mean_full_fidelity_cost`` (the budget unit of ``--protocol jahs``) against an independent estimate of the
    same mean: other configs, drawn another way, queried through the query API at N5, W16, Resolution 1, last epoch."""
    from generation.optimum import mean_full_fidelity_cost
    from jahs_gym.benchmark import Benchmark

    b = load_bundle(tiny_data_env)
    n = 20_000
    unit = mean_full_fidelity_cost(b.predictor(), b.max_epochs, n=n, seed=0)
    bench = Benchmark(tiny_data_env)
    frame = pd.DataFrame([{**c.as_dict(), "N": 5, "W": 16, "Resolution": 1.0, "epoch": b.max_epochs}
                          for c in sample_configs(n, 12345)])
    cost = bench.query(frame)["cpu_runtime"].to_numpy()
    se = np.sqrt(cost.var(ddof=1) / n + cost.var(ddof=1) / n)
    assert abs(unit - cost.mean()) < 4 * se, (unit, cost.mean(), se)
