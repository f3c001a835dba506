"""Regret is measured against the surrogate's own optimum: >= 0 by construction, and no output is pinned at
the table's best (predictions are bounded by what a metric can be, not by the table's range)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.common import dict_action
from jahs_gym.bundle import installed_tasks, load_bundle
from jahs_gym.envs import JAHSEnv
from jahs_gym.space import Config, Fidelity, encode, sample_configs

SHIPPED = ["fashion_mnist", "mnist"]


@pytest.mark.parametrize("task", SHIPPED)
def test_no_prediction_sits_on_the_tables_best(task: str) -> None:
    """20,000 random configs at the largest fidelity: none on the table's maximum, none piled up on one value."""
    b = load_bundle(task)
    n = 20_000
    x = encode(sample_configs(n, 0), [Fidelity(N=5, W=16, Resolution=1.0, epoch=b.max_epochs)] * n)
    y = b.predictor().predict(x)
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
