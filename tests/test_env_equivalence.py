"""JAHSEnv and JAHSVectorEnv run one episode core: the same seeds and actions give the same everything.

Every action type x reward (a callable included) x task (one bundle, "random") x continuation x noise:
sub-environment i of ``JAHSVectorEnv.reset(seed=s)`` against ``JAHSEnv.reset(seed=s + i)`` over episodes
long enough to end (budget or max_steps) and autoreset. Observations, rewards, flags and every info key.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from jahs_gym.envs import ACTION_TYPES, JAHSEnv, JAHSVectorEnv

N_ENVS, STEPS, MAX_STEPS = 3, 14, 5


def user_reward(metrics: dict, state: dict) -> float:
    """A callable reward that looks at metrics and state (module level: it pickles)."""
    return metrics["valid_acc"] / 100 - state["cost"] / state["budget"] + 0.01 * state["step"]


REWARDS = ["improvement", "accuracy_per_cost", "multiobjective", user_reward]
CASES = list(itertools.product(ACTION_TYPES, REWARDS, ["one", "random"], [False, True], [False, True]))


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == {k for k in b if not k.startswith("_")}, where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:  # the same bits: one rule set, the same kernel order on both paths
        assert a == b, where


def _row(info: dict, i: int) -> dict:
    """Sub-environment i's info as the single env writes it: the keys whose mask is set, nested dicts too."""
    out = {}
    for k, v in info.items():
        if k.startswith("_") or not info[f"_{k}"][i]:
            continue
        out[k] = _row(v, i) if isinstance(v, dict) else v[i].item() if isinstance(v[i], np.generic) else v[i]
    return out


def _actions(space: Any, steps: int, n: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _one(batch: Any, i: int) -> Any:
    return {k: v[i] for k, v in batch.items()} if isinstance(batch, dict) else batch[i]


@pytest.mark.parametrize(("action_type", "reward", "task", "continuation", "noise"), CASES)
def test_single_and_vector_env_agree(tiny_data_env: str, action_type: str, reward: Any, task: str,
                                     continuation: bool, noise: bool) -> None:
    kw = dict(task=tiny_data_env if task == "one" else "random", action_type=action_type, reward=reward,
              continuation=continuation, noise=noise, max_steps=MAX_STEPS, budget=60.0, n_epochs=4, n_arms=6,
              reward_weights={"latency": 0.3, "size": 0.2} if reward == "multiobjective" else None)
    vec = JAHSVectorEnv(num_envs=N_ENVS, **kw)
    singles = [JAHSEnv(**kw) for _ in range(N_ENVS)]
    vobs, vinfo = vec.reset(seed=7)
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=7 + i)
        np.testing.assert_array_equal(vobs[i], obs)
        assert all(vinfo[f"_{k}"].all() for k in info), "reset: every sub-env has every key (masks set)"
        _same(info, {k: (v[i].tolist() if k == "epoch_grid" else v[i]) for k, v in vinfo.items()}, "reset")
    # repeats of earlier actions exercise continuation and the noise of a run seen before
    acts = _actions(vec.action_space, STEPS // 2, N_ENVS, seed=11)
    acts = acts + acts[::-1]
    done = [False] * N_ENVS
    ends = 0
    for t, batch in enumerate(acts):
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(batch)
        for i, env in enumerate(singles):
            where = f"step {t} env {i}"
            if done[i]:  # the vector env autoresets this sub-environment on this step: it reports the reset's info
                obs, info = env.reset()
                np.testing.assert_array_equal(vobs[i], obs, err_msg=where)
                assert vrew[i] == 0.0 and not vterm[i] and not vtrunc[i], where
                row = _row(vinfo, i)
                _same(info, {**row, "epoch_grid": row["epoch_grid"].tolist()}, where)
                done[i] = False
                continue
            obs, rew, term, trunc, info = env.step(_one(batch, i))
            np.testing.assert_array_equal(vobs[i], obs, err_msg=where)
            assert vrew[i] == rew, where
            assert (bool(vterm[i]), bool(vtrunc[i])) == (term, trunc), where
            _same(info, _row(vinfo, i), where)
            done[i] = term or trunc
            ends += done[i]
    assert ends >= N_ENVS, "the episodes must end (budget or max_steps) so that autoreset is compared too"
