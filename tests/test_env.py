"""JAHS-v0 and its vector twin on a bundle fitted from a tiny real table."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jahs_gym  # noqa: F401  (registers JAHS-v0)
from jahs_gym.envs import OBS_KEYS, JAHSEnv, JAHSVectorEnv

TYPES = [(a, o) for a in ("multidiscrete", "discrete", "box", "dict") for o in ("box", "dict")]


@pytest.mark.parametrize(("action_type", "observation_type"), TYPES)
def test_gymnasium_checker(tiny_data_env: str, action_type: str, observation_type: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("JAHS-v0", task=tiny_data_env, action_type=action_type, observation_type=observation_type)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize(("action_type", "observation_type"), TYPES)
def test_sb3_checker(tiny_data_env: str, action_type: str, observation_type: str) -> None:
    """SB3's checker passes for every action and observation type; for "dict" actions it only warns (SB3's
    algorithms take no Dict action space), it never raises."""
    from stable_baselines3.common.env_checker import check_env

    check_env(JAHSEnv(task=tiny_data_env, action_type=action_type, observation_type=observation_type))


def _rollout(env: gym.Env, seed: int, steps: int = 15) -> list:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert type(r) is float and type(term) is bool and type(trunc) is bool
        out.append((obs.tolist(), r, term, trunc, info.get("test_acc")))
        if term or trunc:
            obs, _ = env.reset()
    return out


def test_same_seed_same_trajectory(tiny_data_env: str) -> None:
    a = _rollout(JAHSEnv(task=tiny_data_env, noise=True), seed=3)
    b = _rollout(JAHSEnv(task=tiny_data_env, noise=True), seed=3)
    c = _rollout(JAHSEnv(task=tiny_data_env, noise=True), seed=4)
    assert a[1:] == b[1:] and a[1:] != c[1:]


def test_observation_holds_no_test_accuracy(tiny_data_env: str) -> None:
    env = JAHSEnv(task=tiny_data_env, observation_type="dict", budget=1e9)
    env.reset(seed=0)
    env.action_space.seed(0)
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert tuple(obs) == OBS_KEYS and "test_acc" not in obs
    assert 0 <= info["test_acc"] <= 100 and info["regret"] == pytest.approx(info["regret_reference"]
                                                                             - info["incumbent_test_acc"])


@pytest.mark.parametrize(("action_type", "bad", "needle"), [
    ("multidiscrete", np.zeros(13, dtype=np.int64), r"has shape \(13,\) and dtype int64; expected \(14,\) integers"),
    ("multidiscrete", np.full(14, 9, dtype=np.int64), r"action\[0\]=9 \(Op1\) is out of range; allowed: 0..4"),
    ("multidiscrete", np.zeros(14, dtype=np.float32), r"dtype float32; expected \(14,\) integers"),
    ("box", np.full(14, np.nan, dtype=np.float32), r"action\[0\]=nan \(Op1\) is NaN"),
    ("box", np.full(14, 1.5, dtype=np.float32), r"action\[0\]=1.5 \(Op1\) is out of range; allowed: floats in \[-1, 1"),
    ("discrete", 256, r"action 256 is out of range; allowed: 0..255"),
    ("discrete", 1.5, "must be an integer arm index"),
    ("dict", {"Op1": 0}, "action keys"),
])
def test_invalid_actions_raise_one_clear_error(tiny_data_env: str, action_type: str, bad: object, needle: str) -> None:
    env = JAHSEnv(task=tiny_data_env, action_type=action_type)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=needle):
        env.step(bad)
    env.step(env.action_space.sample())  # the env is still usable


def test_bad_options_are_refused(tiny_data_env: str) -> None:
    with pytest.raises(ValueError, match="action_type='continuous' is not allowed"):
        JAHSEnv(task=tiny_data_env, action_type="continuous")
    with pytest.raises(ValueError, match="reward='accuracy' is not allowed"):
        JAHSEnv(task=tiny_data_env, reward="accuracy")
    with pytest.raises(ValueError, match="budget=-1 must be a positive"):
        JAHSEnv(task=tiny_data_env, budget=-1)
    with pytest.raises(KeyError, match="no bundle for task 'nope'"):
        JAHSEnv(task="nope")


def test_budget_ends_the_episode_unrevealed(tiny_data_env: str) -> None:
    env = JAHSEnv(task=tiny_data_env, budget=1e-3)
    env.reset(seed=0)
    a = np.array([2] * 6 + [0, 0, 4, 4, 2, 2, 2, 9])  # the most expensive fidelity
    obs0 = env._observation()
    obs, r, term, trunc, info = env.step(a)
    assert term and info["over_budget"] and r == 0.0 and "test_acc" not in info
    assert info["cumulative_cost"] == 0.0 and np.allclose(obs[:10], obs0[:10])


def test_truncation_and_costs_add_up(tiny_data_env: str) -> None:
    env = JAHSEnv(task=tiny_data_env, budget=1e9, max_steps=5)
    env.reset(seed=1)
    total = 0.0
    for i in range(5):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        total += info["cost"]
        assert info["cumulative_cost"] == pytest.approx(total) and not term
        assert trunc == (i == 4)


def test_continuation_charges_only_extra_epochs(tiny_data_env: str) -> None:
    a1 = np.array([2, 0, 3, 2, 0, 2, 0, 0, 4, 4, 0, 0, 0, 0])  # epoch grid index 0 -> 1 epoch
    a2 = a1.copy()
    a2[13] = 9  # -> max epochs
    plain, cont = JAHSEnv(task=tiny_data_env), JAHSEnv(task=tiny_data_env, continuation=True)
    for e in (plain, cont):
        e.reset(seed=0)
    c1 = cont.step(a1)[4]["cost"]
    full = plain.step(a2)[4]
    extra = cont.step(a2)[4]
    assert extra["cost"] == pytest.approx(full["metrics"]["cpu_runtime"] - c1)
    assert cont.step(a1)[4]["cost"] == 0.0  # fewer epochs than already trained: known, free


@pytest.mark.parametrize("reward", ["improvement", "accuracy_per_cost", "multiobjective"])
def test_rewards(tiny_data_env: str, reward: str) -> None:
    weights = {"latency": 0.5} if reward == "multiobjective" else None
    env = JAHSEnv(task=tiny_data_env, reward=reward, reward_weights=weights)
    env.reset(seed=0)
    # a cheap action (N1-W4-R0.25, 1 epoch) that fits the budget: an evaluation over budget earns 0
    _, r, _, _, info = env.step(np.array([2, 0, 3, 2, 0, 2, 0, 0, 4, 4, 0, 0, 0, 0]))
    assert not info["over_budget"]
    if reward == "improvement":
        assert r == pytest.approx(info["incumbent_valid_acc"] / 100 - 0.1 * info["cost"] / info["budget"])
    assert math.isfinite(r)


def test_callable_reward(tiny_data_env: str) -> None:
    seen = {}

    def fn(metrics: dict, state: dict) -> float:
        seen.update(state)
        return metrics["valid_acc"] - state["cost"]

    env = JAHSEnv(task=tiny_data_env, reward=fn, budget=1e9)  # within the budget, so the reward is called
    env.reset(seed=0)
    env.action_space.seed(0)
    _, r, _, _, info = env.step(env.action_space.sample())
    assert r == pytest.approx(info["valid_acc"] - info["cost"]) and seen["step"] == 1
    bad = JAHSEnv(task=tiny_data_env, reward=lambda m, s: float("nan"), budget=1e9)
    bad.reset(seed=0)
    with pytest.raises(ValueError, match="must return a finite float"):
        bad.step(bad.action_space.sample())


@pytest.mark.parametrize("action_type", ["multidiscrete", "discrete", "box"])
def test_vector_env_matches_single_envs(tiny_data_env: str, action_type: str) -> None:
    n = 3
    vec = gym.make_vec("JAHS-v0", num_envs=n, vectorization_mode="vector_entry_point", task=tiny_data_env,
                       action_type=action_type, max_steps=4, budget=1e9)
    assert isinstance(vec.unwrapped, JAHSVectorEnv)
    singles = [JAHSEnv(task=tiny_data_env, action_type=action_type, max_steps=4, budget=1e9) for _ in range(n)]
    vec.reset(seed=0)
    for s in singles:
        s.reset(seed=0)
    vec.action_space.seed(1)
    for t in range(6):
        acts = vec.action_space.sample()
        obs, rew, term, trunc, info = vec.step(acts)
        if t == 4:  # episodes truncated at step 4; this step autoresets every env
            assert (rew == 0).all() and not term.any() and not trunc.any() and (obs == 0).all()
            for s in singles:
                s.reset(seed=0)
            continue
        for i, s in enumerate(singles):
            o, r, te, tr, inf = s.step(acts[i])
            np.testing.assert_allclose(obs[i], o, rtol=1e-6, atol=1e-7)
            assert rew[i] == pytest.approx(r) and term[i] == te and trunc[i] == tr
            assert info["test_acc"][i] == pytest.approx(inf["test_acc"])


def test_vector_env_rejects_bad_actions(tiny_data_env: str) -> None:
    vec = JAHSVectorEnv(num_envs=2, task=tiny_data_env)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions\[1, 13\]=10 \(epoch\) is out of range"):
        a = np.zeros((2, 14), dtype=np.int64)
        a[1, 13] = 10
        vec.step(a)
    with pytest.raises(ValueError, match=r"expected \(2, 14\) integers"):
        vec.step(np.zeros((3, 14), dtype=np.int64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), action_type=st.sampled_from(["multidiscrete", "discrete", "box", "dict"]),
       continuation=st.booleans(), noise=st.booleans(), budget=st.floats(0.05, 50.0),
       reward=st.sampled_from(["improvement", "accuracy_per_cost", "multiobjective"]))
def test_fuzz_actions_and_options(tiny_data_env: str, data: st.DataObject, action_type: str, continuation: bool,
                                  noise: bool, budget: float, reward: str) -> None:
    env = JAHSEnv(task=tiny_data_env, action_type=action_type, continuation=continuation, noise=noise,
                  budget=budget, reward=reward, max_steps=6)
    env.reset(seed=data.draw(st.integers(0, 2**16)))
    env.action_space.seed(data.draw(st.integers(0, 2**16)))
    for _ in range(6):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(r)
        assert info["cumulative_cost"] <= budget + 1e-9
        if term or trunc:
            break


def test_random_task_draws_among_installed_bundles(tiny_data_env: str) -> None:
    env = JAHSEnv(task="random")
    names = {env.reset(seed=s)[1]["task"] for s in range(30)}
    assert {"fmnist_tiny", "fashion_mnist"} <= names
    vec = JAHSVectorEnv(num_envs=16, task="random")
    vec.reset(seed=0)
    assert len(set(vec.core.task_of.tolist())) > 1
    vec.step(vec.action_space.sample())


def test_noise_needs_a_noise_model(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import shutil

    from jahs_gym import bundle
    from jahs_gym.bundle import write_manifest

    dst = tmp_path / "quiet"
    shutil.copytree(tiny_bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["noise"] = {}
    write_manifest(dst, m)
    monkeypatch.setenv("JAHS_GYM_DATA", str(tmp_path))
    bundle.load_bundle.cache_clear()
    JAHSEnv(task="quiet")
    with pytest.raises(ValueError, match=r"noise=True, but the bundle\(s\) \['quiet'\] have no seed-noise model"):
        JAHSEnv(task="quiet", noise=True)
    bundle.load_bundle.cache_clear()


def test_observation_is_the_documented_normalisation(tiny_data_env: str) -> None:
    """Metric entries are (f(v) - f(lo)) / (f(hi) - f(lo)) clipped to [0, 1], f the surrogate's fitted transform."""
    from jahs_gym import transforms as tf
    from jahs_gym.envs import OBS_METRICS

    env = JAHSEnv(task=tiny_data_env)
    env.reset(seed=0)
    bounds, fitted = env.task.bundle.bounds(), env.task.bundle.transforms()
    for _ in range(20):
        obs, _, term, trunc, info = env.step(env.action_space.sample())
        if info["over_budget"]:
            break
        for k, m in enumerate(OBS_METRICS):
            f = fitted[m]
            lo, hi = tf.forward_scalar(f, bounds[m][0]), tf.forward_scalar(f, bounds[m][1])
            want = min(max((tf.forward_scalar(f, info["metrics"][m]) - lo) / (hi - lo), 0.0), 1.0)
            assert obs[k] == pytest.approx(want, abs=1e-6), m
        if term or trunc:
            env.reset()
