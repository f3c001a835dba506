"""JAHS-v0: one budget-limited joint architecture + hyperparameter search run as a Gymnasium episode.

:class:`JAHSEnv` is the environment, :class:`JAHSVectorEnv` its native vector twin (one batched
surrogate call per step for all sub-environments).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from jahs_gym.bundle import Bundle, best_test_acc, installed_tasks, load_bundle
from jahs_gym.space import (
    ACTIVATIONS,
    LR_RANGE,
    N_FEATURES,
    N_VALUES,
    OP_KEYS,
    OPS,
    RESOLUTIONS,
    W_VALUES,
    WD_RANGE,
    encode_arrays,
    encode_one,
    sample_configs,
)

ACTION_TYPES = ("multidiscrete", "discrete", "box", "dict")
OBSERVATION_TYPES = ("box", "dict")
REWARDS = ("improvement", "accuracy_per_cost", "multiobjective")
# what the observation shows of an evaluation (test accuracy never enters it)
OBS_METRICS = ("valid_acc", "train_acc", "valid_loss", "train_loss", "cpu_runtime", "latency", "size_MB", "FLOPS")
OBS_KEYS = (*OBS_METRICS, "incumbent_valid_acc", "budget_used", "steps_used", "step_cost")
NEEDED_METRICS = (*OBS_METRICS, "test_acc")
BOX_DIMS = 14  # Op1..Op6, Activation, TrivialAugment, LearningRate, WeightDecay, N, W, Resolution, epoch


class _Task:
    """A bundle as the environment needs it: predictor, normalisation, budget, epoch grid, noise."""

    def __init__(self, name: str, bundle: Bundle, n_epochs: int, budget: float | None) -> None:
        missing = [m for m in NEEDED_METRICS if m not in bundle.metrics]
        if missing:
            raise ValueError(f"task {name!r}: its bundle lacks metric(s) {missing} that JAHS-v0 needs")
        self.name, self.bundle = name, bundle
        self.predictor = bundle.predictor()
        self.metrics = self.predictor.metrics
        self.idx = {m: self.metrics.index(m) for m in self.metrics}
        self.max_epochs = bundle.max_epochs
        self.epoch_grid = epoch_grid(self.max_epochs, n_epochs)
        self.epoch_grid_list = self.epoch_grid.tolist()
        man = bundle.manifest
        self.budget = float(budget if budget is not None else man["default_budget_s"])
        if not (self.budget > 0 and math.isfinite(self.budget)):
            raise ValueError(f"budget={budget!r} must be a positive number of simulated seconds")
        self.best_test_acc = best_test_acc(man)
        self.noise_std = np.array([man.get("noise", {}).get(m, 0.0) for m in self.metrics])
        self.has_noise_model = bool(man.get("noise"))
        lo = np.array([bundle.bounds()[m][0] for m in OBS_METRICS])
        hi = np.array([bundle.bounds()[m][1] for m in OBS_METRICS])
        tr = [bundle.transforms()[m] for m in OBS_METRICS]
        # observation = (f(v) - f(lo)) / (f(hi) - f(lo)) with f the metric's fitted transform
        self._f = [(_log if t == "log" else math.log1p if t == "log1p" else float) for t in tr]
        self.obs_lo = np.array([f(max(v, 1e-12)) for f, v in zip(self._f, lo)])
        span = np.array([f(max(v, 1e-12)) for f, v in zip(self._f, hi)]) - self.obs_lo
        self.obs_span = np.where(span > 0, span, 1.0)
        self.obs_cols = np.array([self.idx[m] for m in OBS_METRICS])
        self.log_cols = np.array([t == "log" for t in tr])
        self.log1p_cols = np.array([t == "log1p" for t in tr])
        f_of = dict(zip(OBS_METRICS, self._f))
        self._f_all = [f_of.get(m, float) for m in self.metrics]  # f per predicted metric (identity if unobserved)
        self._raw_scalar = list(zip(self.obs_cols.tolist(), self.obs_lo.tolist(), self.obs_span.tolist()))
        self.runtime_col, self.valid_col = self.idx["cpu_runtime"], self.idx["valid_acc"]
        self.test_col = self.idx["test_acc"]

    def normalise_list(self, y: list[float]) -> list[float]:
        """:meth:`normalise` for one row given as a list of metric values (the noisy single env)."""
        return self.normalise_raw([f(v) for f, v in zip(self._f_all, y)])

    def normalise_raw(self, raw: list[float]) -> list[float]:
        """Observation entries from a row of fitted-space values f(y) (the predictor's ``raw_buffer``, before
        clipping), clipped to [0, 1]: no transform left to apply (the single env's hot path)."""
        out = []
        for c, lo, span in self._raw_scalar:
            v = (raw[c] - lo) / span
            out.append(0.0 if v < 0.0 else 1.0 if v > 1.0 else v)
        return out

    def normalise(self, y: np.ndarray) -> np.ndarray:
        """Observation entries of predicted metrics, rows of y (..., metrics) -> (..., 8) in [0, 1]."""
        v = y[..., self.obs_cols]
        v = np.where(self.log_cols, np.log(np.maximum(v, 1e-12)), np.where(self.log1p_cols, np.log1p(v), v))
        return np.clip((v - self.obs_lo) / self.obs_span, 0.0, 1.0)


def _log(v: float) -> float:
    return math.log(max(v, 1e-12))


def epoch_grid(max_epochs: int, n: int) -> np.ndarray:
    """n epoch choices: every epoch when n >= max_epochs, else log-spaced from 1 to max_epochs."""
    if n >= max_epochs:
        return np.round(np.linspace(1, max_epochs, n)).astype(np.int64)
    return np.round(np.geomspace(1, max_epochs, n)).astype(np.int64)


def _resolve_tasks(task: str) -> list[str]:
    if task == "random":
        names = sorted(installed_tasks())
        if not names:
            raise KeyError("task='random' found no installed bundles; see `jahs-gym tasks`")
        return names
    return [task]


class ActionCodec:
    """Decodes actions of one action type into arrays: ops (n, 6), act, ta, lr, wd, N, W, R, epoch index."""

    def __init__(self, action_type: str, n_lr: int, n_wd: int, n_epochs: int, n_arms: int, arm_seed: int) -> None:
        if action_type not in ACTION_TYPES:
            raise ValueError(f"action_type={action_type!r} is not allowed; allowed: {list(ACTION_TYPES)}")
        for k, v in (("n_lr", n_lr), ("n_wd", n_wd), ("n_epochs", n_epochs), ("n_arms", n_arms)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{k}={v!r} must be a positive integer")
        self.type = action_type
        self.lr_grid = np.geomspace(*LR_RANGE, n_lr)
        self.wd_grid = np.geomspace(*WD_RANGE, n_wd)
        self.n_epochs = n_epochs
        self.nvec = np.array([len(OPS)] * 6 + [len(ACTIVATIONS), 2, n_lr, n_wd, 3, 3, 3, n_epochs], dtype=np.int64)
        self._nvec_list = self.nvec.tolist()
        self._lr_list, self._wd_list = self.lr_grid.tolist(), self.wd_grid.tolist()
        if action_type == "multidiscrete":
            self.space: spaces.Space = spaces.MultiDiscrete(self.nvec)
        elif action_type == "discrete":
            self.space = spaces.Discrete(n_arms)
            rng = np.random.default_rng(arm_seed)
            cfgs = sample_configs(n_arms, rng)
            self.arms = {
                "ops": np.array([[getattr(c, k) for k in OP_KEYS] for c in cfgs], dtype=np.int64),
                "act": np.array([ACTIVATIONS.index(c.Activation) for c in cfgs]),
                "ta": np.array([c.TrivialAugment for c in cfgs]),
                "lr": np.array([c.LearningRate for c in cfgs]), "wd": np.array([c.WeightDecay for c in cfgs]),
                "n": rng.choice(N_VALUES, n_arms), "w": rng.choice(W_VALUES, n_arms),
                "r": rng.choice(RESOLUTIONS, n_arms), "e": rng.integers(0, n_epochs, n_arms),
            }
        elif action_type == "box":
            self.space = spaces.Box(-1.0, 1.0, (BOX_DIMS,), np.float32)
        else:
            self.space = spaces.Dict({
                **{k: spaces.Discrete(len(OPS)) for k in OP_KEYS},
                "Activation": spaces.Discrete(len(ACTIVATIONS)), "TrivialAugment": spaces.Discrete(2),
                "LearningRate": spaces.Box(LR_RANGE[0], LR_RANGE[1], (1,), np.float32),
                "WeightDecay": spaces.Box(WD_RANGE[0], WD_RANGE[1], (1,), np.float32),
                "N": spaces.Discrete(3), "W": spaces.Discrete(3), "Resolution": spaces.Discrete(3),
                "epoch": spaces.Discrete(n_epochs),
            })

    # ------------------------------------------------------------------------------ one action
    def decode(self, a: Any) -> tuple:
        """(ops tuple, act, ta, lr, wd, N, W, R, epoch index) of one action; raises ValueError if invalid."""
        t = self.type
        if t == "multidiscrete":
            if type(a) is np.ndarray and a.shape == (14,) and a.dtype.kind in "iu":
                v = a.tolist()
            else:
                v = self._check_array(a, (14,), "iu").tolist()
            nvec = self._nvec_list
            for i in range(14):
                if not 0 <= v[i] < nvec[i]:
                    raise ValueError(f"action[{i}]={v[i]} is out of range; allowed: 0..{nvec[i] - 1} "
                                     f"(action space {self.space})")
            return ((v[0], v[1], v[2], v[3], v[4], v[5]), v[6], v[7] == 1, self._lr_list[v[8]], self._wd_list[v[9]],
                    N_VALUES[v[10]], W_VALUES[v[11]], RESOLUTIONS[v[12]], v[13])
        if t == "discrete":
            if isinstance(a, np.ndarray) and a.shape in ((), (1,)) and a.dtype.kind in "iu":
                a = int(a.reshape(-1)[0])
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                raise ValueError(f"action {a!r} must be an integer arm index in 0..{self.space.n - 1}")
            if not 0 <= a < self.space.n:
                raise ValueError(f"action {a} is out of range; allowed: 0..{self.space.n - 1}")
            m = self.arms
            return (tuple(int(o) for o in m["ops"][a]), int(m["act"][a]), bool(m["ta"][a]), float(m["lr"][a]),
                    float(m["wd"][a]), int(m["n"][a]), int(m["w"][a]), float(m["r"][a]), int(m["e"][a]))
        if t == "box":
            v = self._check_array(a, (BOX_DIMS,), "f")
            if np.isnan(v).any():
                raise ValueError(f"action has NaN at index {int(np.flatnonzero(np.isnan(v))[0])}; "
                                 "allowed: floats in [-1, 1]")
            if (v < -1).any() or (v > 1).any():
                bad = int(np.flatnonzero((v < -1) | (v > 1))[0])
                raise ValueError(f"action[{bad}]={float(v[bad])!r} is out of range; allowed: [-1, 1]")
            u = (v.astype(np.float64) + 1.0) / 2.0
            idx = np.minimum((u * self.nvec).astype(np.int64), self.nvec - 1)  # lr, wd (8, 9) decode below
            lr = 10 ** (math.log10(LR_RANGE[0]) + u[8] * (math.log10(LR_RANGE[1]) - math.log10(LR_RANGE[0])))
            wd = 10 ** (math.log10(WD_RANGE[0]) + u[9] * (math.log10(WD_RANGE[1]) - math.log10(WD_RANGE[0])))
            return (tuple(int(o) for o in idx[:6]), int(idx[6]), bool(idx[7]), float(lr), float(wd),
                    N_VALUES[idx[10]], W_VALUES[idx[11]], RESOLUTIONS[idx[12]], int(idx[13]))
        return self._decode_dict(a)

    def _check_array(self, a: Any, shape: tuple, kinds: str) -> np.ndarray:
        v = np.asarray(a)
        if v.shape != shape:
            raise ValueError(f"action has shape {v.shape}; expected {shape} (action space {self.space})")
        if v.dtype.kind not in kinds:
            raise ValueError(f"action has dtype {v.dtype}; expected {'integers' if kinds == 'iu' else 'floats'} "
                             f"(action space {self.space})")
        return v

    def _decode_dict(self, a: Any) -> tuple:
        if not isinstance(a, Mapping):
            raise ValueError(f"action must be a dict with keys {list(self.space.spaces)}; got {type(a).__name__}")
        keys = list(self.space.spaces)
        if set(a) != set(keys):
            raise ValueError(f"action keys {sorted(a)} differ from the allowed keys {keys}")
        for k, sp in self.space.spaces.items():
            v = a[k]
            if isinstance(sp, spaces.Box):
                arr = np.asarray(v, dtype=np.float64).reshape(-1)
                if arr.shape != (1,) or np.isnan(arr).any() or not sp.low[0] <= arr[0] <= sp.high[0] * (1 + 1e-6):
                    raise ValueError(f"action[{k!r}]={v!r} is not allowed; allowed: a float in "
                                     f"[{sp.low[0]:g}, {sp.high[0]:g}]")
            else:
                iv = np.asarray(v)
                if iv.dtype.kind not in "iu" or iv.size != 1 or not 0 <= int(iv.reshape(-1)[0]) < sp.n:
                    raise ValueError(f"action[{k!r}]={v!r} is not allowed; allowed: an integer in 0..{sp.n - 1}")

        def i(k: str) -> int:
            return int(np.asarray(a[k]).reshape(-1)[0])

        return (tuple(i(k) for k in OP_KEYS), i("Activation"), bool(i("TrivialAugment")),
                float(np.asarray(a["LearningRate"]).reshape(-1)[0]), float(np.asarray(a["WeightDecay"]).reshape(-1)[0]),
                N_VALUES[i("N")], W_VALUES[i("W")], RESOLUTIONS[i("Resolution")], i("epoch"))

    # ---------------------------------------------------------------------------- batch (vector)
    def decode_batch(self, actions: Any, n: int) -> dict[str, np.ndarray]:
        t = self.type
        if t == "multidiscrete":
            v = np.asarray(actions)
            if v.shape != (n, 14) or v.dtype.kind not in "iu":
                raise ValueError(f"actions have shape {v.shape} and dtype {v.dtype}; expected ({n}, 14) integers")
            if (v < 0).any() or (v >= self.nvec).any():
                env, bad = map(int, np.argwhere((v < 0) | (v >= self.nvec))[0])
                raise ValueError(f"actions[{env}, {bad}]={int(v[env, bad])} is out of range; "
                                 f"allowed: 0..{self.nvec[bad] - 1}")
            return self._arrays(v[:, :6], v[:, 6], v[:, 7], self.lr_grid[v[:, 8]], self.wd_grid[v[:, 9]], v[:, 10:14])
        if t == "discrete":
            v = np.asarray(actions)
            if v.shape != (n,) or v.dtype.kind not in "iu":
                raise ValueError(f"actions have shape {v.shape} and dtype {v.dtype}; expected ({n},) integers")
            if (v < 0).any() or (v >= self.space.n).any():
                env = int(np.flatnonzero((v < 0) | (v >= self.space.n))[0])
                raise ValueError(f"actions[{env}]={int(v[env])} is out of range; allowed: 0..{self.space.n - 1}")
            m = self.arms
            return {"ops": m["ops"][v], "act": m["act"][v], "ta": m["ta"][v], "lr": m["lr"][v], "wd": m["wd"][v],
                    "n": m["n"][v], "w": m["w"][v], "r": m["r"][v], "e": m["e"][v]}
        if t == "box":
            v = np.asarray(actions)
            if v.shape != (n, BOX_DIMS) or v.dtype.kind != "f":
                raise ValueError(f"actions have shape {v.shape} and dtype {v.dtype}; expected ({n}, {BOX_DIMS}) floats")
            if np.isnan(v).any() or (v < -1).any() or (v > 1).any():
                env, bad = map(int, np.argwhere(np.isnan(v) | (v < -1) | (v > 1))[0])
                raise ValueError(f"actions[{env}, {bad}]={float(v[env, bad])!r} is not allowed; allowed: [-1, 1]")
            u = (v.astype(np.float64) + 1.0) / 2.0
            idx = np.minimum((u * self.nvec).astype(np.int64), self.nvec - 1)
            llr, lwd = np.log10(LR_RANGE), np.log10(WD_RANGE)
            return self._arrays(idx[:, :6], idx[:, 6], idx[:, 7], 10 ** (llr[0] + u[:, 8] * (llr[1] - llr[0])),
                                10 ** (lwd[0] + u[:, 9] * (lwd[1] - lwd[0])), idx[:, 10:14])
        rows = [self._decode_dict({k: np.asarray(v)[i] for k, v in actions.items()}) for i in range(n)]
        return {"ops": np.array([r[0] for r in rows]), "act": np.array([r[1] for r in rows]),
                "ta": np.array([r[2] for r in rows]), "lr": np.array([r[3] for r in rows]),
                "wd": np.array([r[4] for r in rows]), "n": np.array([r[5] for r in rows]),
                "w": np.array([r[6] for r in rows]), "r": np.array([r[7] for r in rows]),
                "e": np.array([r[8] for r in rows])}

    @staticmethod
    def _arrays(ops: np.ndarray, act: np.ndarray, ta: np.ndarray, lr: np.ndarray, wd: np.ndarray,
                fid: np.ndarray) -> dict[str, np.ndarray]:
        return {"ops": ops, "act": act, "ta": ta.astype(bool), "lr": lr, "wd": wd,
                "n": np.asarray(N_VALUES)[fid[:, 0]], "w": np.asarray(W_VALUES)[fid[:, 1]],
                "r": np.asarray(RESOLUTIONS)[fid[:, 2]], "e": fid[:, 3]}


def _obs_space(observation_type: str) -> spaces.Space:
    if observation_type not in OBSERVATION_TYPES:
        raise ValueError(f"observation_type={observation_type!r} is not allowed; allowed: {list(OBSERVATION_TYPES)}")
    if observation_type == "box":
        return spaces.Box(0.0, 1.0, (len(OBS_KEYS),), np.float32)
    return spaces.Dict({k: spaces.Box(0.0, 1.0, (1,), np.float32) for k in OBS_KEYS})


def _check_noise(noise: bool, tasks: Any) -> None:
    lacking = [t.name for t in tasks if noise and not t.has_noise_model]
    if lacking:
        raise ValueError(f"noise=True, but the bundle(s) {lacking} have no noise model (their tables hold no "
                         "repeated seeds yet); use noise=False or refit once repeated seeds are trained")


def _check_reward(reward: Any, weights: Mapping[str, float] | None) -> dict[str, float]:
    if not callable(reward) and reward not in REWARDS:
        raise ValueError(f"reward={reward!r} is not allowed; allowed: {list(REWARDS)} or a callable "
                         "(metrics, state) -> float")
    w = {"accuracy": 1.0, "latency": 0.0, "size": 0.0, **(weights or {})}
    unknown = set(w) - {"accuracy", "latency", "size"}
    if unknown:
        raise ValueError(f"reward_weights has unknown key(s) {sorted(unknown)}; allowed: accuracy, latency, size")
    return {k: float(v) for k, v in w.items()}


class JAHSEnv(gym.Env):
    """
    ## Description

    One episode is one budget-limited optimisation run of joint architecture and hyperparameter
    search in the JAHS-Bench-201 space. Each step trains (simulated, by surrogates fitted on learning
    curves our MPI pipeline really trained) one configuration at one fidelity and reveals its
    predicted metrics; simulated training time is charged to a budget.

    ## Action Space

    ``action_type="multidiscrete"`` (default; PPO, A2C): ``MultiDiscrete([5]*6 + [3, 2, n_lr, n_wd, 3, 3, 3,
    n_epochs])``: Op1..Op6 (skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3), Activation
    (ReLU, Hardswish, Mish), TrivialAugment, LearningRate on a log grid of ``n_lr`` values in [1e-3, 1],
    WeightDecay on a log grid of ``n_wd`` values in [1e-5, 1e-2], N (1, 3, 5), W (4, 8, 16), Resolution
    (0.25, 0.5, 1.0) and an index into ``epoch_grid`` (every epoch when ``n_epochs`` >= the task's max
    epochs, else log-spaced).

    ``"discrete"`` (DQN, bandits): ``Discrete(n_arms)``, a fixed pool of (config, fidelity, epochs) arms
    drawn with ``arm_seed``. ``"box"`` (SAC, TD3): ``Box(-1, 1, (14,), float32)`` in the order above,
    each entry decoded to the nearest valid value (LearningRate and WeightDecay continuously, log scale).
    ``"dict"``: the same entries by name (Discrete indices; LearningRate and WeightDecay as Box(1,)).
    An invalid action (outside the space, NaN, wrong shape or dtype) raises one ``ValueError``.

    ## Observation Space

    ``Box(0, 1, (12,), float32)``, or by name with ``observation_type="dict"``. Metric entries are
    normalised with the bounds of the bundle's table (log scale for cpu_runtime, latency, size, FLOPS;
    log1p for losses; accuracy / 100). Test accuracy never enters the observation.

    | Num | Name                | Meaning                                               |
    |-----|---------------------|-------------------------------------------------------|
    | 0   | valid_acc           | this evaluation's validation accuracy                 |
    | 1   | train_acc           | its training accuracy                                 |
    | 2   | valid_loss          | its validation loss                                   |
    | 3   | train_loss          | its training loss                                     |
    | 4   | cpu_runtime         | simulated seconds to train and evaluate it (the cost) |
    | 5   | latency             | forward seconds per image                             |
    | 6   | size_MB             | parameters (millions)                                 |
    | 7   | FLOPS               | MFLOPs per image                                      |
    | 8   | incumbent_valid_acc | best validation accuracy so far / 100                 |
    | 9   | budget_used         | fraction of the budget spent                          |
    | 10  | steps_used          | fraction of ``max_steps`` taken                       |
    | 11  | step_cost           | this step's cost / budget                             |

    The timings (cpu_runtime, latency) are what the training machine measured at its median speed: the
    bundle's fit took that machine's drift over hours out of the labels (see the task's DATA_CARD.md).

    ## Rewards

    ``"improvement"`` (default): gain of the incumbent's validation accuracy (in [0, 1] units) minus
    ``cost_weight * cost / budget``. ``"accuracy_per_cost"``: ``valid_acc / 100 * (budget / max_steps) /
    cost``, clipped to [0, 10] (1 = full accuracy at the average per-step share of the budget).
    ``"multiobjective"``: ``w_accuracy * valid_acc / 100 - w_latency * latency_norm - w_size * size_norm``
    with ``reward_weights``. Or any callable ``(metrics, state) -> float`` where ``metrics`` are this
    evaluation's predicted metrics (test accuracy included) and ``state`` holds budget, cost,
    cumulative_cost, incumbent_valid_acc, previous_incumbent_valid_acc, step and max_steps.

    ## Starting State

    Nothing evaluated: metric entries 0, budget and steps unused.

    ## Episode End

    Terminated when an evaluation does not fit into the remaining budget (it is not revealed; reward
    0; ``info["over_budget"]`` is True) or the budget is used up exactly. Truncated after ``max_steps``
    steps. With ``continuation=True`` a config already trained at the same (N, W, Resolution) is
    charged only for the extra epochs (freeze-thaw); asking for fewer epochs than already trained is free.

    ## Info

    ``test_acc``, ``valid_acc``, ``cost``, ``cumulative_cost``, ``budget``, ``incumbent_valid_acc``,
    ``incumbent_test_acc``, ``regret`` (the task's best known test accuracy minus the incumbent's test
    accuracy), ``best_test_acc``, ``over_budget``, ``metrics`` (every predicted metric), ``config`` and
    ``fidelity`` of the evaluation, ``task``.

    ## Arguments

    ``task`` ("fashion_mnist", an installed task, a bundle folder, or "random": one installed task per
    episode), ``budget`` (simulated seconds; default from the bundle's manifest, about 100
    mid-fidelity evaluations), ``max_steps`` (100), ``action_type``, ``observation_type``, ``reward``,
    ``cost_weight`` (0.1), ``reward_weights``, ``continuation`` (False), ``noise`` (False: draw
    observations with the bundle's seed-noise model through ``self.np_random``), ``n_lr`` (8), ``n_wd`` (8),
    ``n_epochs`` (10), ``n_arms`` (256), ``arm_seed`` (0).

    >>> import gymnasium as gym, jahs_gym
    >>> env = gym.make("JAHS-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, info["task"]
    ((12,), 'fashion_mnist')
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> type(reward), 0 <= info["valid_acc"] <= 100, "test_acc" in info
    (<class 'float'>, True, True)

    ## Version History

    * v0: first release (surrogates fitted on jahs-gym's own training runs).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, task: str = "fashion_mnist", budget: float | None = None, max_steps: int = 100,
                 action_type: str = "multidiscrete", observation_type: str = "box",
                 reward: str | Callable[[dict, dict], float] = "improvement", cost_weight: float = 0.1,
                 reward_weights: Mapping[str, float] | None = None, continuation: bool = False, noise: bool = False,
                 n_lr: int = 8, n_wd: int = 8, n_epochs: int = 10, n_arms: int = 256, arm_seed: int = 0,
                 render_mode: str | None = None) -> None:
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps={max_steps!r} must be a positive integer")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']} or None")
        self.reward_weights = _check_reward(reward, reward_weights)
        self.reward_type, self.cost_weight = reward, float(cost_weight)
        self._task_names = _resolve_tasks(task)
        self._tasks = {n: _Task(n, load_bundle(n), n_epochs, budget) for n in self._task_names}
        self.task = self._tasks[self._task_names[0]]
        self.max_steps, self.continuation, self.noise = int(max_steps), bool(continuation), bool(noise)
        _check_noise(self.noise, self._tasks.values())
        self.codec = ActionCodec(action_type, n_lr, n_wd, n_epochs, n_arms, arm_seed)
        self.action_space = self.codec.space
        self.observation_type = observation_type
        self.observation_space = _obs_space(observation_type)
        self.render_mode = render_mode
        self._x = np.zeros(N_FEATURES, dtype=np.float32)
        self._obs = np.zeros(len(OBS_KEYS), dtype=np.float32)
        self._reset_state()

    # ------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        if len(self._task_names) > 1:
            self.task = self._tasks[self._task_names[int(self.np_random.integers(len(self._task_names)))]]
        self._reset_state()
        return self._observation(), {"task": self.task.name, "budget": self.task.budget,
                                     "epoch_grid": self.task.epoch_grid.tolist()}

    def _reset_state(self) -> None:
        self._obs[:] = 0.0
        self.cumulative_cost, self.steps = 0.0, 0
        self.incumbent_valid_acc, self.incumbent_test_acc = 0.0, 0.0
        self.incumbent: dict[str, Any] | None = None
        self._trained: dict[tuple, tuple[int, float]] = {}
        self._last_text = "reset"

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        ops, act, ta, lr, wd, n, w, r, ei = self.codec.decode(action)
        task = self.task
        pred = task.predictor
        epoch = task.epoch_grid_list[ei]
        encode_one(pred.x_buffer, ops, act, ta, lr, wd, n, w, r, epoch)
        yb = pred.predict_buffer()
        if self.noise:
            yb = np.clip(yb + self.np_random.normal(0.0, 1.0, yb.shape) * task.noise_std, pred.lo, pred.hi)
        y = yb.tolist()
        runtime = y[task.runtime_col]
        cost = runtime
        key = None
        if self.continuation:
            key = (ops, act, ta, lr, wd, n, w, r)
            prev = self._trained.get(key)
            if prev is not None:
                cost = 0.0 if epoch <= prev[0] else max(runtime - prev[1], 0.0)
        self.steps += 1
        budget = task.budget
        truncated = self.steps >= self.max_steps
        config = {"Op1": ops[0], "Op2": ops[1], "Op3": ops[2], "Op4": ops[3], "Op5": ops[4], "Op6": ops[5],
                  "Activation": ACTIVATIONS[act], "TrivialAugment": ta, "Optimizer": "SGD", "LearningRate": lr,
                  "WeightDecay": wd}
        fidelity = {"N": n, "W": w, "Resolution": r, "epoch": epoch}
        o = self._obs
        o[10] = min(self.steps / self.max_steps, 1.0)  # stepping past the end keeps the observation in bounds
        if self.cumulative_cost + cost > budget:
            info = {"task": task.name, "budget": budget, "cost": cost, "config": config, "fidelity": fidelity,
                    "best_test_acc": task.best_test_acc, "over_budget": True, "cumulative_cost": self.cumulative_cost,
                    **self._incumbent_info()}
            self._last_text = f"step {self.steps}: over budget (cost {cost:.1f}s), not revealed"
            return self._observation(), 0.0, True, truncated, info
        if key is not None and (key not in self._trained or epoch > self._trained[key][0]):
            self._trained[key] = (epoch, runtime)
        self.cumulative_cost += cost
        valid, test = y[task.valid_col], y[task.test_col]
        prev_inc = self.incumbent_valid_acc
        if self.incumbent is None or valid > prev_inc:
            self.incumbent_valid_acc, self.incumbent_test_acc = valid, test
            self.incumbent = {**config, **fidelity}
        metrics = dict(zip(task.metrics, y))
        reward = self._reward(metrics, cost, prev_inc)
        o[:8] = task.normalise_list(y) if self.noise else task.normalise_raw(pred.raw_buffer.tolist())
        o[8] = self.incumbent_valid_acc / 100.0
        o[9] = min(self.cumulative_cost / budget, 1.0)
        o[11] = min(cost / budget, 1.0)
        terminated = self.cumulative_cost >= budget
        info = {"task": task.name, "budget": budget, "cost": cost, "config": config, "fidelity": fidelity,
                "best_test_acc": task.best_test_acc, "over_budget": False, "cumulative_cost": self.cumulative_cost,
                "valid_acc": valid, "test_acc": test, "metrics": metrics, "incumbent": dict(self.incumbent),
                "incumbent_valid_acc": self.incumbent_valid_acc, "incumbent_test_acc": self.incumbent_test_acc,
                "regret": task.best_test_acc - self.incumbent_test_acc}
        if self.render_mode is not None:
            self._last_text = (f"step {self.steps}: valid {valid:.2f}% test {test:.2f}% cost {cost:.1f}s budget "
                               f"{self.cumulative_cost:.0f}/{budget:.0f}s incumbent {self.incumbent_valid_acc:.2f}%")
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_text
        return None

    # ------------------------------------------------------------------------------- helpers
    def _incumbent_info(self) -> dict[str, Any]:
        return {"incumbent": dict(self.incumbent) if self.incumbent else None,
                "incumbent_valid_acc": self.incumbent_valid_acc,
                "incumbent_test_acc": self.incumbent_test_acc,
                "regret": self.task.best_test_acc - self.incumbent_test_acc if self.incumbent else math.nan}

    def _reward(self, metrics: dict[str, float], cost: float, prev_inc: float) -> float:
        budget = self.task.budget
        rt = self.reward_type
        if rt == "improvement":
            return (self.incumbent_valid_acc - prev_inc) / 100.0 - self.cost_weight * cost / budget
        if rt == "accuracy_per_cost":
            return min(max(metrics["valid_acc"] / 100.0 * (budget / self.max_steps) / max(cost, 1e-9), 0.0), 10.0)
        if rt == "multiobjective":
            y = np.array([metrics[m] for m in self.task.metrics])
            norm = self.task.normalise(y)
            wts = self.reward_weights
            return (wts["accuracy"] * metrics["valid_acc"] / 100.0 - wts["latency"] * float(norm[5])
                    - wts["size"] * float(norm[6]))
        state = {"budget": budget, "cost": cost, "cumulative_cost": self.cumulative_cost,
                 "incumbent_valid_acc": self.incumbent_valid_acc, "previous_incumbent_valid_acc": prev_inc,
                 "step": self.steps, "max_steps": self.max_steps}
        value = rt(metrics, state)
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(float(value)):
            raise ValueError(f"the reward callable returned {value!r}; it must return a finite float")
        return float(value)

    def _observation(self) -> Any:
        if self.observation_type == "box":
            return self._obs.copy()
        return {k: self._obs[i:i + 1].copy() for i, k in enumerate(OBS_KEYS)}

    def decode(self, action: Any) -> dict[str, Any]:
        """The config and fidelity that ``action`` asks for, as a JAHS-Bench-201 dict (for people)."""
        ops, act, ta, lr, wd, n, w, r, ei = self.codec.decode(action)
        return {**{k: o for k, o in zip(OP_KEYS, ops)}, "Activation": ACTIVATIONS[act], "TrivialAugment": ta,
                "Optimizer": "SGD", "LearningRate": lr, "WeightDecay": wd, "N": n, "W": w, "Resolution": r,
                "epoch": int(self.task.epoch_grid[ei])}


class JAHSVectorEnv(VectorEnv):
    """``num_envs`` JAHS-v0 episodes stepped together with one batched surrogate call per task.

    Same arguments as :class:`JAHSEnv`. Autoreset is Gymnasium's next-step mode: the step after an
    episode ends resets that sub-environment (its action is ignored; reward 0).
    ``info`` holds arrays (with ``_key`` masks): test_acc, valid_acc, cost, cumulative_cost,
    incumbent_valid_acc, incumbent_test_acc, regret, over_budget.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, task: str = "fashion_mnist", budget: float | None = None,
                 max_steps: int = 100, action_type: str = "multidiscrete", observation_type: str = "box",
                 reward: str | Callable[[dict, dict], float] = "improvement", cost_weight: float = 0.1,
                 reward_weights: Mapping[str, float] | None = None, continuation: bool = False, noise: bool = False,
                 n_lr: int = 8, n_wd: int = 8, n_epochs: int = 10, n_arms: int = 256, arm_seed: int = 0) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be a positive integer")
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps={max_steps!r} must be a positive integer")
        self.num_envs = int(num_envs)
        self.reward_weights = _check_reward(reward, reward_weights)
        self.reward_type, self.cost_weight = reward, float(cost_weight)
        self._task_names = _resolve_tasks(task)
        self._tasks = [_Task(n, load_bundle(n), n_epochs, budget) for n in self._task_names]
        self.max_steps, self.continuation, self.noise = int(max_steps), bool(continuation), bool(noise)
        _check_noise(self.noise, self._tasks)
        self.codec = ActionCodec(action_type, n_lr, n_wd, n_epochs, n_arms, arm_seed)
        self.single_action_space = self.codec.space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_type = observation_type
        self.single_observation_space = _obs_space(observation_type)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        n = self.num_envs
        self._task_of = np.zeros(n, dtype=np.int64)
        self._obs = np.zeros((n, len(OBS_KEYS)), dtype=np.float32)
        self._cum = np.zeros(n)
        self._steps = np.zeros(n, dtype=np.int64)
        self._inc_valid = np.zeros(n)
        self._inc_test = np.zeros(n)
        self._has_inc = np.zeros(n, dtype=bool)
        self._done = np.zeros(n, dtype=bool)
        self._budget = np.zeros(n)
        self._best_test = np.zeros(n)
        self._trained: list[dict] = [{} for _ in range(n)]

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._reset_envs(np.ones(self.num_envs, dtype=bool))
        return self._observation(), {}

    def _reset_envs(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        if k == 0:
            return
        if len(self._tasks) > 1:
            self._task_of[mask] = self.np_random.integers(len(self._tasks), size=k)
        self._budget[mask] = [self._tasks[t].budget for t in self._task_of[mask]]
        self._best_test[mask] = [self._tasks[t].best_test_acc for t in self._task_of[mask]]
        self._obs[mask] = 0.0
        self._cum[mask] = 0.0
        self._steps[mask] = 0
        self._inc_valid[mask] = 0.0
        self._inc_test[mask] = 0.0
        self._has_inc[mask] = False
        self._done[mask] = False
        if self.continuation:
            for i in np.flatnonzero(mask):
                self._trained[i] = {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        n = self.num_envs
        resetting = self._done.copy()
        a = self.codec.decode_batch(actions, n)
        self._reset_envs(resetting)
        live = ~resetting
        # one batched surrogate call per task
        first = self._tasks[0]
        y = np.zeros((n, len(first.metrics)))
        for t_idx, task in enumerate(self._tasks):
            sel = live & (self._task_of == t_idx) if len(self._tasks) > 1 else live
            if not sel.any():
                continue
            epochs = task.epoch_grid[a["e"][sel]]
            x = encode_arrays(a["ops"][sel], a["act"][sel], a["ta"][sel], a["lr"][sel], a["wd"][sel], a["n"][sel],
                              a["w"][sel], a["r"][sel], epochs)
            ys = task.predictor.predict(x)
            if self.noise:
                ys = np.clip(ys + self.np_random.normal(0.0, 1.0, ys.shape) * task.noise_std, task.predictor.lo,
                             task.predictor.hi)
            y[sel] = ys[:, [task.idx[m] for m in first.metrics]] if task is not first else ys
        idx = first.idx
        runtime = y[:, idx["cpu_runtime"]]
        cost = runtime.copy()
        if self.continuation:
            epochs_all = np.array([self._tasks[t].epoch_grid[e] for t, e in zip(self._task_of, a["e"])])
            for i in np.flatnonzero(live):
                key = (tuple(a["ops"][i]), int(a["act"][i]), bool(a["ta"][i]), float(a["lr"][i]), float(a["wd"][i]),
                       int(a["n"][i]), int(a["w"][i]), float(a["r"][i]))
                prev = self._trained[i].get(key)
                if prev is not None:
                    cost[i] = 0.0 if epochs_all[i] <= prev[0] else max(runtime[i] - prev[1], 0.0)
                if prev is None or epochs_all[i] > prev[0]:
                    self._trained[i][key] = (int(epochs_all[i]), float(runtime[i]))
        self._steps[live] += 1
        over = live & (self._cum + cost > self._budget)
        ok = live & ~over
        valid, test = y[:, idx["valid_acc"]], y[:, idx["test_acc"]]
        prev_inc = self._inc_valid.copy()
        better = ok & (~self._has_inc | (valid > self._inc_valid))
        self._inc_valid[better], self._inc_test[better] = valid[better], test[better]
        self._has_inc |= better
        self._cum[ok] += cost[ok]
        reward = np.zeros(n)
        reward[ok] = self._rewards(y[ok], cost[ok], prev_inc[ok], np.flatnonzero(ok))
        if ok.any():
            for t_idx, task in enumerate(self._tasks):
                sel = ok & (self._task_of == t_idx) if len(self._tasks) > 1 else ok
                if sel.any():
                    self._obs[sel, :8] = task.normalise(y[sel][:, [task.idx[m] for m in first.metrics]]
                                                        if task is not first else y[sel])
        self._obs[ok, 8] = self._inc_valid[ok] / 100.0
        self._obs[ok, 9] = np.minimum(self._cum[ok] / self._budget[ok], 1.0)
        self._obs[ok, 11] = np.minimum(cost[ok] / self._budget[ok], 1.0)
        self._obs[live, 10] = np.minimum(self._steps[live] / self.max_steps, 1.0)
        terminated = over | (ok & (self._cum >= self._budget))
        truncated = live & (self._steps >= self.max_steps) & ~terminated
        self._done = terminated | truncated
        regret = np.where(self._has_inc, self._best_test - self._inc_test, np.nan)
        info = {"test_acc": np.where(ok, test, np.nan), "valid_acc": np.where(ok, valid, np.nan),
                "cost": np.where(live, cost, 0.0), "cumulative_cost": self._cum.copy(),
                "incumbent_valid_acc": self._inc_valid.copy(), "incumbent_test_acc": self._inc_test.copy(),
                "regret": regret, "over_budget": over}
        info.update({f"_{k}": live for k in list(info)})
        return self._observation(), reward, terminated, truncated, info

    def _rewards(self, y: np.ndarray, cost: np.ndarray, prev_inc: np.ndarray, envs: np.ndarray) -> np.ndarray:
        first = self._tasks[0]
        idx = first.idx
        budget = self._budget[envs]
        rt = self.reward_type
        if rt == "improvement":
            return (self._inc_valid[envs] - prev_inc) / 100.0 - self.cost_weight * cost / budget
        if rt == "accuracy_per_cost":
            return np.clip(y[:, idx["valid_acc"]] / 100.0 * (budget / self.max_steps) / np.maximum(cost, 1e-9), 0, 10)
        if rt == "multiobjective":
            norm = first.normalise(y)
            w = self.reward_weights
            return w["accuracy"] * y[:, idx["valid_acc"]] / 100.0 - w["latency"] * norm[:, 5] - w["size"] * norm[:, 6]
        out = np.empty(len(envs))
        for j, i in enumerate(envs):
            metrics = dict(zip(first.metrics, y[j].tolist()))
            state = {"budget": float(budget[j]), "cost": float(cost[j]), "cumulative_cost": float(self._cum[i]),
                     "incumbent_valid_acc": float(self._inc_valid[i]),
                     "previous_incumbent_valid_acc": float(prev_inc[j]), "step": int(self._steps[i]),
                     "max_steps": self.max_steps}
            out[j] = float(rt(metrics, state))
        return out

    def _observation(self) -> Any:
        if self.observation_type == "box":
            return self._obs.copy()
        return {k: self._obs[:, i:i + 1].copy() for i, k in enumerate(OBS_KEYS)}
