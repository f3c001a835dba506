"""Every env owns its state: copies, pickles (also in a fresh process), threads and SB3's vector envs give the
same numbers as a fresh env with the same seed, and noise cannot be farmed by repeating an action."""

from __future__ import annotations

import copy
import multiprocessing as mp
import pickle
import threading
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import jahs_gym  # noqa: F401  (registers JAHS-v0)
from jahs_gym.envs import JAHSEnv, JAHSVectorEnv


def _actions(env: gym.Env, n: int, seed: int) -> list:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def _play(env: Any, actions: list) -> list:
    """(observation, reward, flags, valid_acc, cumulative cost) per step, resetting (unseeded) at episode ends."""
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((np.asarray(obs).tolist(), r, term, trunc, info.get("valid_acc"), info["cumulative_cost"]))
        if term or trunc:
            env.reset()
    return out


def _fresh(task: str, actions: list, seed: int, **kw: Any) -> JAHSEnv:
    env = JAHSEnv(task=task, **kw)
    env.reset(seed=seed)
    _play(env, actions)
    return env


KW = [dict(), dict(noise=True, continuation=True), dict(action_type="box", reward="multiobjective",
                                                       reward_weights={"latency": 1.0})]


@pytest.mark.parametrize("kw", KW)
def test_deepcopy_and_pickle_continue_like_the_original(tiny_data_env: str, kw: dict) -> None:
    probe = JAHSEnv(task=tiny_data_env, max_steps=7, budget=200.0, **kw)
    first, later = _actions(probe, 9, seed=1), _actions(probe, 30, seed=2)
    env = _fresh(tiny_data_env, first, 5, max_steps=7, budget=200.0, **kw)
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    want = _play(_fresh(tiny_data_env, first, 5, max_steps=7, budget=200.0, **kw), later)  # a fresh env, same seed
    assert _play(env, later) == want
    for c in copies:
        assert _play(c, later) == want
    # the copies share the read-only forest, never the buffers
    assert copies[0].core._rows.x is not env.core._rows.x and copies[0].task.forest is env.task.forest


def test_vector_env_deepcopy_and_pickle(tiny_data_env: str) -> None:
    vec = JAHSVectorEnv(num_envs=4, task=tiny_data_env, max_steps=5, noise=True, continuation=True)
    vec.reset(seed=3)
    acts = _actions(vec, 12, seed=4)
    for a in acts[:5]:
        vec.step(a)
    copies = [copy.deepcopy(vec), pickle.loads(pickle.dumps(vec))]
    want = [vec.step(a) for a in acts[5:]]
    for c in copies:
        for (o, r, te, tr, info), a in zip(want, acts[5:]):
            o2, r2, te2, tr2, info2 = c.step(a)
            assert (te == te2).all() and (tr == tr2).all()
            np.testing.assert_array_equal(o, o2)
            np.testing.assert_array_equal(r, r2)
            np.testing.assert_array_equal(info["valid_acc"], info2["valid_acc"])


def _child(blob: bytes, actions: list) -> list:
    env = pickle.loads(blob)
    return _play(env, actions)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pickle_into_a_fresh_process(tiny_data_env: str, method: str) -> None:
    env = _fresh(tiny_data_env, [], 9, noise=True)
    acts = _actions(env, 40, seed=3)
    _play(env, acts[:10])
    blob = pickle.dumps(env)
    with mp.get_context(method).Pool(1) as pool:
        got = pool.apply(_child, (blob, acts[10:]))
    assert got == _play(env, acts[10:])


def test_two_envs_in_two_threads_give_the_sequential_numbers(tiny_data_env: str) -> None:
    envs = [JAHSEnv(task=tiny_data_env, budget=1e12, max_steps=10**6) for _ in range(2)]
    acts = [_actions(envs[0], 3000, seed=s) for s in (0, 1)]
    want = []
    for e, a in zip(envs, acts):
        e.reset(seed=0)
        want.append(_play(e, a))
    got: list = [None, None]

    def run(k: int) -> None:
        envs[k].reset(seed=0)
        got[k] = _play(envs[k], acts[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want


def test_repeating_an_action_cannot_farm_the_noise(tiny_data_env: str) -> None:
    env = JAHSEnv(task=tiny_data_env, noise=True, continuation=True, budget=1e9, max_steps=300)
    env.reset(seed=0)
    a = env.action_space.sample()
    _, _, _, _, first = env.step(a)
    for _ in range(199):
        _, r, _, _, info = env.step(a)
        assert info["cost"] == 0.0 and info["valid_acc"] == first["valid_acc"]
        assert info["incumbent_valid_acc"] == first["valid_acc"] and r == 0.0
    # the same run continued to more epochs extends its curve with the same noise: fewer epochs again is free and
    # returns the same (noisy) value as before
    b = a.copy()
    b[13] = env.action_space.nvec[13] - 1
    longer = env.step(b)[4]
    again = env.step(a)[4]
    assert again["cost"] == 0.0 and again["valid_acc"] == first["valid_acc"] and longer["cost"] >= 0.0
    # another episode draws another run noise
    env.reset(seed=1)
    assert env.step(a)[4]["valid_acc"] != first["valid_acc"]


@pytest.mark.parametrize("reward", ["improvement", "accuracy_per_cost", "multiobjective"])
def test_free_repeats_earn_no_reward(tiny_data_env: str, reward: str) -> None:
    """With continuation, asking again for a run already trained that far costs nothing and reveals nothing."""
    env = JAHSEnv(task=tiny_data_env, reward=reward, continuation=True, budget=1e9,
                  reward_weights={"latency": 0.5} if reward == "multiobjective" else None)
    env.reset(seed=0)
    env.action_space.seed(0)
    a = env.action_space.sample()
    _, first, _, _, _ = env.step(a)
    assert first != 0.0
    for _ in range(5):
        _, r, _, _, info = env.step(a)
        assert info["cost"] == 0.0 and r == 0.0


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_render_modes(tiny_data_env: str, mode: str) -> None:
    env = gym.make("JAHS-v0", task=tiny_data_env, render_mode=mode)
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    out = env.render()
    if mode == "ansi":
        assert out.startswith("step 5:")
    else:
        assert out.dtype == np.uint8 and out.shape == (96, 160, 3) and (out != 255).any()
    vec = JAHSVectorEnv(num_envs=2, task=tiny_data_env, render_mode=mode)
    vec.reset(seed=0)
    vec.step(vec.action_space.sample())
    frames = vec.render()
    assert len(frames) == 2


def test_render_collection_wrapper(tiny_data_env: str) -> None:
    from gymnasium.wrappers import RenderCollection

    env = RenderCollection(gym.make("JAHS-v0", task=tiny_data_env, render_mode="rgb_array"))
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    frames = env.render()
    assert len(frames) >= 3 and all(f.shape == (96, 160, 3) for f in frames)


def test_gymnasium_checker_with_render(tiny_data_env: str) -> None:
    from gymnasium.utils.env_checker import check_env

    for mode in ("ansi", "rgb_array"):
        check_env(gym.make("JAHS-v0", task=tiny_data_env, render_mode=mode).unwrapped)


def test_vector_reset_seeds(tiny_data_env: str) -> None:
    vec = JAHSVectorEnv(num_envs=3, task=tiny_data_env, noise=True)
    a = vec.action_space.sample()
    vec.reset(seed=[4, 5, 6])
    by_list = vec.step(a)[4]["valid_acc"]
    vec.reset(seed=4)
    assert np.array_equal(vec.step(a)[4]["valid_acc"], by_list, equal_nan=True)
    with pytest.raises(ValueError, match=r"seed=\[1, 2\] must be None, an int .* or a list of 3"):
        vec.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="takes no reset options"):
        vec.reset(options={"x": 1})


@pytest.mark.slow
@pytest.mark.parametrize("vec_cls", ["dummy", "spawn", "forkserver"])
def test_sb3_make_vec_env(tiny_data_env: str, vec_cls: str) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    kwargs: dict = {"vec_env_cls": DummyVecEnv} if vec_cls == "dummy" else {
        "vec_env_cls": SubprocVecEnv, "vec_env_kwargs": {"start_method": vec_cls}}
    # "jahs_gym:JAHS-v0" makes gymnasium import jahs_gym (which registers JAHS-v0) in every fresh worker process
    venv = make_vec_env("jahs_gym:JAHS-v0", n_envs=2, seed=0, env_kwargs={"task": tiny_data_env}, **kwargs)
    try:
        assert venv.render_mode == "rgb_array"
        PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, verbose=0).learn(64)
        frames = venv.get_images()
        assert len(frames) == 2 and frames[0].shape == (96, 160, 3)
    finally:
        venv.close()
