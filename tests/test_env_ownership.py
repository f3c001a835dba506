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


# ------------------------------------------------------------------------------------------------ helpers
def _assert_same(got: Any, want: Any, where: str = "") -> None:
    """Exactly equal: dicts key by key (the same keys), arrays by shape, dtype and value (NaN at the same places)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {got.keys()} != {want.keys()}"
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
        return
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{k}]")
        return
    g, w = np.asarray(got), np.asarray(want)
    assert (g.shape, g.dtype) == (w.shape, w.dtype), f"{where}: {g.shape} {g.dtype} != {w.shape} {w.dtype}"
    np.testing.assert_array_equal(g, w, err_msg=where, strict=True)


def _vec_play(vec: JAHSVectorEnv, actions: list) -> list:
    """Every step's (observation, rewards, terminated, truncated, info); the vector env autoresets itself."""
    return [vec.step(a) for a in actions]


# ------------------------------------------------------------------------------- vector env vs a fresh one
VEC_KW = [dict(max_steps=5, noise=True, continuation=True),
          dict(max_steps=4, budget=1.0, action_type="dict", observation_type="dict", reward="multiobjective",
               reward_weights={"latency": 1.0}),
          dict(max_steps=6, budget=2.5, action_type="discrete", noise=True, render_mode="rgb_array")]


def _fresh_vec(task: str, kw: dict, seed: int, actions: list) -> JAHSVectorEnv:
    vec = JAHSVectorEnv(num_envs=4, task=task, **kw)
    vec.reset(seed=seed)
    _vec_play(vec, actions)
    return vec


@pytest.mark.parametrize("kw", VEC_KW)
def test_vector_copies_continue_like_a_fresh_vector_env(tiny_data_env: str, kw: dict) -> None:
    """A deepcopy and a pickle round trip of a vector env mid-run give exactly what a fresh vector env (same
    arguments, same seed, same actions) gives: observations, rewards, flags and every info key."""
    probe = JAHSVectorEnv(num_envs=4, task=tiny_data_env, **kw)
    first, later = _actions(probe, 7, seed=4), _actions(probe, 14, seed=5)
    vec = _fresh_vec(tiny_data_env, kw, 3, first)
    copies = [copy.deepcopy(vec), pickle.loads(pickle.dumps(vec))]
    fresh = _fresh_vec(tiny_data_env, kw, 3, first)
    want = _vec_play(fresh, later)
    # the window holds episode ends and autoresets (max_steps <= 6), so NaN in the info arrays; the small budgets
    # make evaluations over the budget likely too (the tiny bundle's costs vary from session to session)
    assert any((w[2] | w[3]).any() for w in want) and any(np.isnan(w[4]["valid_acc"]).any() for w in want)
    for c in [*copies, vec]:
        _assert_same(_vec_play(c, later), want, "copy" if c is not vec else "original")
        if kw.get("render_mode"):
            _assert_same(c.render(), fresh.render(), "render")


def _vec_child(blob: bytes, actions: list) -> list:
    return _vec_play(pickle.loads(blob), actions)


@pytest.mark.slow
def test_vector_env_pickled_into_a_fresh_process(tiny_data_env: str) -> None:
    kw = VEC_KW[0]
    probe = JAHSVectorEnv(num_envs=4, task=tiny_data_env, **kw)
    first, later = _actions(probe, 6, seed=7), _actions(probe, 12, seed=8)
    blob = pickle.dumps(_fresh_vec(tiny_data_env, kw, 11, first))
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_vec_child, (blob, later))
    _assert_same(got, _vec_play(_fresh_vec(tiny_data_env, kw, 11, first), later))


# -------------------------------------------------------------------------- Benchmark (kind="surrogate")
BENCH_KW = [dict(), dict(metrics=["valid-acc", "runtime"], names="original", lazy=True)]


def _bench_queries(n: int = 6) -> tuple[list, Any]:
    """(config dict, nepochs) pairs and a query frame of other rows (fashion_mnist trains 10 epochs)."""
    import pandas as pd

    from jahs_gym.space import N_VALUES, RESOLUTIONS, ROW_KEYS, W_VALUES, sample_configs

    rng = np.random.default_rng(0)
    rows = [{**c.as_dict(), "N": N_VALUES[k % 3], "W": W_VALUES[(k // 3) % 3], "Resolution": RESOLUTIONS[k % 3],
             "epoch": 1 + k % 10} for k, c in enumerate(sample_configs(3 * n, rng))]
    calls = [({k: v for k, v in r.items() if k != "epoch"}, r["epoch"]) for r in rows[:n]]
    return calls, pd.DataFrame(rows[n:])[list(ROW_KEYS)]


def _bench_answers(bench: Any, calls: list, frame: Any) -> tuple:
    return ([bench(c, nepochs=e) for c, e in calls], bench(calls[0][0], nepochs=10, full_trajectory=True),
            bench.query(frame))


def _assert_same_answers(got: tuple, want: tuple) -> None:
    import pandas as pd

    assert got[0] == want[0] and got[1] == want[1]  # dicts of floats: exactly equal
    pd.testing.assert_frame_equal(got[2], want[2], check_exact=True)


@pytest.mark.parametrize("kw", BENCH_KW)
def test_benchmark_copies_answer_as_a_fresh_benchmark(kw: dict) -> None:
    from jahs_gym.benchmark import Benchmark

    calls, frame = _bench_queries()
    bench = Benchmark("fashion_mnist", **kw)
    _bench_answers(bench, calls[:2], frame.iloc[:3])  # in use (its predictor loaded) before it is copied
    copies = [copy.deepcopy(bench), pickle.loads(pickle.dumps(bench))]
    want = _bench_answers(Benchmark("fashion_mnist", **kw), calls, frame)
    assert list(want[2].columns) == list(bench.metrics) and len(want[2]) == len(frame)
    for c in copies:
        assert (c.kind, c.task, c.metrics, c.names) == (bench.kind, bench.task, bench.metrics, bench.names)
        _assert_same_answers(_bench_answers(c, calls, frame), want)
    _assert_same_answers(_bench_answers(bench, calls, frame), want)


def _bench_child(blob: bytes, calls: list, frame: Any) -> tuple:
    return _bench_answers(pickle.loads(blob), calls, frame)


@pytest.mark.slow
def test_benchmark_pickled_into_a_fresh_process() -> None:
    from jahs_gym.benchmark import Benchmark

    calls, frame = _bench_queries()
    blob = pickle.dumps(Benchmark("fashion_mnist"))
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_bench_child, (blob, calls, frame))
    _assert_same_answers(got, _bench_answers(Benchmark("fashion_mnist"), calls, frame))


# ------------------------------------------------------------------------------- the predictor
@pytest.fixture(scope="module")
def forest() -> Any:
    """The shipped fashion_mnist bundle's predictor (a :class:`~jahs_gym.predictor.ForestPredictor`)."""
    from jahs_gym.bundle import load_bundle

    return load_bundle("fashion_mnist").predictor()


def _encoded_rows(n: int, seed: int) -> np.ndarray:
    from jahs_gym.space import N_VALUES, RESOLUTIONS, W_VALUES, Fidelity, encode, sample_configs

    rng = np.random.default_rng(seed)
    cfgs = sample_configs(n, rng)
    fids = [Fidelity(int(rng.choice(N_VALUES)), int(rng.choice(W_VALUES)), float(rng.choice(RESOLUTIONS)),
                     int(rng.integers(1, 11))) for _ in cfgs]
    return np.ascontiguousarray(encode(cfgs, fids), dtype=np.float32)


def _scaler(forest: Any, x: np.ndarray) -> Any:
    """A scaler of every output over the range ``x`` spans (entries strictly inside [0, 1] for most rows)."""
    raw = forest.predict_raw(x)
    return forest.scaler(range(raw.shape[1]), raw.min(axis=0), np.ptp(raw, axis=0) + 1e-9)


def _by_rows(rows: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, raw, scaled) of every row of ``x`` through one RowPredictor."""
    out = [], [], []
    for r in x:
        rows.x[:] = r
        rows()
        for o, buf in zip(out, (rows.y, rows.raw, rows.scaled)):
            o.append(buf.copy())
    return tuple(np.array(o) for o in out)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def test_predictor_deepcopy_and_pickle_predict_the_same_bits(forest: Any) -> None:
    x = _encoded_rows(700, seed=1)  # >= MT_ROWS: the C backend's threaded batch path too
    want_raw, want = forest.predict_raw(x), forest.predict(x)
    assert copy.deepcopy(forest) is forest  # immutable: copies share it
    clone = pickle.loads(pickle.dumps(forest))
    assert clone is not forest and clone.backend == forest.backend and clone.metrics == forest.metrics
    assert not np.shares_memory(clone.nodes, forest.nodes)
    for p in (copy.deepcopy(forest), clone):
        assert _bits(p.predict_raw(x)) == _bits(want_raw) and _bits(p.predict(x)) == _bits(want)
        assert _bits(np.array([p.predict_one(r) for r in x[:50]])) == _bits(want[:50])
    sc = _scaler(forest, x)
    assert _bits(np.stack(_by_rows(clone.row_predictor(sc), x[:50])[0])) == _bits(want[:50])


def test_predictor_in_four_threads_gives_the_sequential_bits(forest: Any) -> None:
    """Each thread its own RowPredictor (and a batch call) on its own rows, all at once: the sequential bits."""
    batches = [_encoded_rows(600, seed=10 + k) for k in range(4)]
    sc = _scaler(forest, np.concatenate(batches))
    want = [(*_by_rows(forest.row_predictor(sc), b), forest.predict(b)) for b in batches]
    got: list = [None] * 4
    start = threading.Barrier(4)

    def run(k: int) -> None:
        rows = forest.row_predictor(sc)
        start.wait()
        got[k] = (*_by_rows(rows, batches[k]), forest.predict(batches[k]))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        assert g is not None and [_bits(a) for a in g] == [_bits(a) for a in w]
    assert _bits(want[0][0]) == _bits(want[0][3])  # one row at a time and the batch agree bit for bit


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_row_predictor_copies_own_their_buffers(forest: Any, how: str) -> None:
    x = _encoded_rows(2, seed=3)
    sc = _scaler(forest, _encoded_rows(200, seed=4))
    rows = forest.row_predictor(sc)
    rows.x[:] = x[0]
    rows()
    before = [b.copy() for b in (rows.x, rows.y, rows.raw, rows.scaled)]
    other = copy.deepcopy(rows) if how == "deepcopy" else pickle.loads(pickle.dumps(rows))
    for a, b in zip((rows.x, rows.y, rows.raw, rows.scaled), (other.x, other.y, other.raw, other.scaled)):
        assert not np.shares_memory(a, b)
    other.x[:] = x[1]
    other()
    # the copy's call wrote its own buffers only
    for a, b in zip(before, (rows.x, rows.y, rows.raw, rows.scaled)):
        assert _bits(a) == _bits(b)
    assert _bits(other.y) == _bits(forest.predict(x[1:2])[0]) and _bits(other.y) != _bits(rows.y)
    assert _bits(other.scaled) == _bits(sc(forest.predict_raw(x[1:2]))[0])
    rows()
    assert _bits(rows.y) == _bits(before[1]) and _bits(rows.scaled) == _bits(before[3])


def test_unpickled_predictor_stays_read_only(forest: Any) -> None:
    clone = pickle.loads(pickle.dumps(forest))
    assert not forest.nodes.flags.writeable
    assert not any(a.flags.writeable for a in (clone.nodes, clone.value, clone.roots, clone.tree_out, clone.base,
                                                clone.lo, clone.hi))
    assert copy.deepcopy(clone) is clone  # shared by copies: it must stay immutable


# ---------------------------------------------------------------------- noise: a property of a training run
def _dict_action(env: JAHSEnv, epoch_index: int, seed: int = 0) -> dict:
    env.action_space.seed(seed)
    a = env.action_space.sample()
    a["epoch"] = epoch_index
    return a


def test_continued_run_extends_the_same_noisy_curve(tiny_data_env: str) -> None:
    """continuation=True: a config asked at a short then a longer epoch shows, at the longer one, exactly what a
    fresh env (same seed) shows when asked the longer epoch directly; the noise-free value differs."""
    kw = dict(task=tiny_data_env, action_type="dict", continuation=True, budget=1e9)
    env = JAHSEnv(noise=True, **kw)
    short, long = _dict_action(env, 0), _dict_action(env, env.action_space["epoch"].n - 1)
    assert env.decode(short)["epoch"] < env.decode(long)["epoch"]
    assert {k: v for k, v in env.decode(short).items() if k != "epoch"} == \
        {k: v for k, v in env.decode(long).items() if k != "epoch"}
    env.reset(seed=6)
    first = env.step(short)[4]
    continued = env.step(long)[4]
    direct_env = JAHSEnv(noise=True, **kw)
    direct_env.reset(seed=6)
    direct = direct_env.step(long)[4]
    assert continued["metrics"] == direct["metrics"] and continued["valid_acc"] == direct["valid_acc"]
    assert continued["cost"] == max(direct["cost"] - first["cost"], 0.0)  # only the extra epochs
    # the shorter epoch asked after the longer one: free, and the same noisy value as before
    again = direct_env.step(short)[4]
    assert again["cost"] == 0.0 and again["metrics"] == first["metrics"]
    quiet = JAHSEnv(noise=False, **kw)
    quiet.reset(seed=6)
    clean = quiet.step(long)[4]
    assert clean["valid_acc"] != direct["valid_acc"] and clean["metrics"]["train_loss"] != direct["metrics"][
        "train_loss"]


@pytest.mark.parametrize("action_type", ["dict", "multidiscrete"])
def test_without_continuation_repeats_return_the_same_noisy_value(tiny_data_env: str, action_type: str) -> None:
    env = JAHSEnv(task=tiny_data_env, action_type=action_type, noise=True, continuation=False, budget=1e9,
                  max_steps=50)
    env.reset(seed=2)
    env.action_space.seed(2)
    a = env.action_space.sample()
    _, _, _, _, first = env.step(a)
    for _ in range(20):
        _, _, term, trunc, info = env.step(a)
        assert not (term or trunc)
        assert info["valid_acc"] == first["valid_acc"] and info["metrics"] == first["metrics"]
        assert info["incumbent_valid_acc"] == first["incumbent_valid_acc"] == first["valid_acc"]
        assert info["cost"] == first["cost"] > 0.0  # charged in full each time (no continuation)
    quiet = JAHSEnv(task=tiny_data_env, action_type=action_type, continuation=False, budget=1e9)
    quiet.reset(seed=2)
    assert quiet.step(a)[4]["valid_acc"] != first["valid_acc"]  # the noise is really on


# ------------------------------------------------------------------------------------------ render
def _render_pair(task: str, mode: str, steps: int, **kw: Any) -> tuple[list, list]:
    """Renders of a 3-env vector env and of 3 single envs (sub-env i: seed 20 + i), after reset and each step."""
    n = 3
    if kw.get("budget") is None:  # just above the most any sub-env spends in ``steps`` steps: all fit, curves spread
        probe = JAHSVectorEnv(num_envs=n, task=task, budget=1e9, max_steps=kw.get("max_steps", 100))
        probe.reset(seed=20)
        probe.action_space.seed(21)
        spent = max(probe.step(probe.action_space.sample())[4]["cumulative_cost"].max() for _ in range(steps))
        kw["budget"] = 1.01 * float(spent)
    vec = JAHSVectorEnv(num_envs=n, task=task, render_mode=mode, **kw)
    singles = [JAHSEnv(task=task, render_mode=mode, **kw) for _ in range(n)]
    vec.reset(seed=20)
    for i, s in enumerate(singles):
        s.reset(seed=20 + i)
    vec.action_space.seed(21)
    got, want = [vec.render()], [tuple(s.render() for s in singles)]
    for _ in range(steps):
        acts = vec.action_space.sample()
        vec.step(acts)
        for i, s in enumerate(singles):
            s.step(acts[i])
        got.append(vec.render())
        want.append(tuple(s.render() for s in singles))
    return got, want


def test_vector_render_rgb_array_is_each_single_envs_frame(tiny_data_env: str) -> None:
    from jahs_gym.envs.render import HEIGHT, WIDTH

    got, want = _render_pair(tiny_data_env, "rgb_array", 4, max_steps=50)
    for t, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, tuple) and len(g) == 3
        for f in g:
            assert isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.shape == (HEIGHT, WIDTH, 3)
        _assert_same(g, w, f"step {t}")
    for i in range(3):  # the first evaluation draws its dot; later ones move it (or the curve)
        assert not np.array_equal(got[0][i], got[1][i])
        assert any(not np.array_equal(got[1][i], got[t][i]) for t in (2, 3, 4))
    assert not np.array_equal(got[4][0], got[4][1])  # each sub-env draws its own episode


@pytest.mark.parametrize("budget", [1e9, 1e-3])
def test_vector_render_ansi_is_each_single_envs_line(tiny_data_env: str, budget: float) -> None:
    got, want = _render_pair(tiny_data_env, "ansi", 3, budget=budget, max_steps=50)
    assert got[0] == want[0] == ("reset",) * 3
    if budget < 1:  # the first evaluation does not fit: over budget, ended; the next step autoresets the vector env
        assert got[1] == want[1] == ("step 1: over budget, not revealed",) * 3
        assert got[2] == ("reset",) * 3
        return
    assert got == want
    for t, g in enumerate(got[1:], start=1):
        assert all(s.startswith(f"step {t}: valid ") and " incumbent " in s for s in g) and len(set(g)) == 3
