"""The episode core of JAHS-v0: N budget-limited optimisation episodes stepped together.

:class:`Episodes` holds every episode's state and applies the episode rules once: budget and
continuation accounting, the incumbent, seed noise, the observation (by named slots), the reward and the
info. ``JAHSEnv`` runs it with N = 1 on Python scalars, ``JAHSVectorEnv`` with N sub-environments on numpy
arrays (:mod:`jahs_gym.envs.xp`); the same code, the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jahs_gym.envs import noise as nz
from jahs_gym.envs.codec import C_ARM, C_EPOCH, COMPONENT_DTYPES, COMPONENTS, ActionCodec
from jahs_gym.envs.info import config_of, fidelity_of, vector_info
from jahs_gym.envs.rewards import REWARDS, StepView, call_user_reward
from jahs_gym.envs.tasks import OBS_KEYS, OBS_METRICS, SLOT, EnvTask
from jahs_gym.envs.xp import Array, Scalar
from jahs_gym.space import OP_KEYS, encode_arrays, encode_one

_N_METRIC_SLOTS = len(OBS_METRICS)
_S_INC, _S_BUDGET, _S_STEPS, _S_COST = (SLOT[k] for k in ("incumbent_valid_acc", "budget_used", "steps_used",
                                                          "step_cost"))
if (_S_INC, _S_BUDGET, _S_STEPS, _S_COST) != tuple(range(_N_METRIC_SLOTS, _N_METRIC_SLOTS + 4)):
    raise ImportError("the observation's state slots must follow its metric slots, in this order")
CONFIG_KEYS = (*OP_KEYS, "Activation", "TrivialAugment", "Optimizer", "LearningRate", "WeightDecay")


class Episodes:
    """State and rules of ``n`` episodes; ``vector=False`` keeps one episode's state in Python scalars."""

    def __init__(self, n: int, vector: bool, tasks: list[EnvTask], codec: ActionCodec, max_steps: int,
                 reward: str | Callable, weights: Mapping[str, float], cost_weight: float, continuation: bool,
                 noise: bool, record: bool = False) -> None:
        self.n, self.vector, self.xp = n, vector, (Array if vector else Scalar)
        self.tasks, self.codec, self.max_steps = tasks, codec, max_steps
        self.reward, self.weights, self.cost_weight = reward, dict(weights), cost_weight
        self._user = callable(reward)
        self._reward_fn = None if self._user else REWARDS[reward]
        self.continuation, self.noise, self.record = continuation, noise, record
        first = tasks[0]
        self.metrics = first.metrics
        c = first.col
        self.c_runtime, self.c_valid, self.c_test = c["cpu_runtime"], c["valid_acc"], c["test_acc"]
        # where a metric sits in a row of metrics: y[j] for one episode, y[:, j] for N
        self._i_rt, self._i_va, self._i_te = ((slice(None), j) if vector else j
                                              for j in (self.c_runtime, self.c_valid, self.c_test))
        # per-task constants gathered per episode in the vector back end
        self._grid = np.stack([t.epoch_grid for t in tasks])
        self._budgets = np.array([t.budget for t in tasks])
        self._best = np.array([t.regret_reference for t in tasks])
        self._noise_std = np.array([t.noise_std if t.noise_std is not None else [0.0] * len(self.metrics)
                                    for t in tasks])
        self._arms = tasks[0].arms is not None  # a table's runs (the arm backends): looked up, not predicted
        self._live = tasks[0].live is not None  # backend="live": trained for real
        self._rows = (None if vector or self._arms or self._live
                      else tasks[0].forest.row_predictor(tasks[0].scaler))  # buffers of its own
        self._row_task: EnvTask | None = tasks[0]
        if vector:
            self.task_of = np.zeros(n, dtype=np.int64)
            self.budget, self.reference = np.full(n, tasks[0].budget), np.full(n, tasks[0].regret_reference)
            self.key = np.zeros(n, dtype=np.uint64)
            self.cum, self.steps = np.zeros(n), np.zeros(n, dtype=np.int64)
            self.inc_valid, self.inc_test, self.inc_test_clean = np.zeros(n), np.zeros(n), np.zeros(n)
            self.has_inc = np.zeros(n, dtype=bool)
            self.inc_cols = [np.zeros(n, dtype=d) for d in COMPONENT_DTYPES]
            self.inc_epoch = np.zeros(n, dtype=np.int64)
            self.obs = np.zeros((n, len(OBS_KEYS)), dtype=np.float32)
        self.trained: list[dict] = [{} for _ in range(n)]
        self.history: list[list] = [[] for _ in range(n)]  # (cumulative cost, incumbent valid acc), if recording
        self.last: list[dict | None] = [None] * n

    # ownership: a copy or an unpickled core gets buffers of its own; the tasks' forests are shared read-only
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_rows"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if not self.vector and not self._arms and not self._live:
            self._rows = self._row_task.forest.row_predictor(self._row_task.scaler)

    # ---------------------------------------------------------------------------------- reset
    def reset(self, i: int, task_index: int, key: int) -> None:
        """Start episode ``i`` afresh on task ``task_index`` with noise key ``key``."""
        if self.vector:
            self.task_of[i], self.key[i] = task_index, key
            self.budget[i], self.reference[i] = self._budgets[task_index], self._best[task_index]
            self.cum[i] = self.steps[i] = self.inc_valid[i] = self.inc_test[i] = self.inc_test_clean[i] = 0
            self.has_inc[i] = False
            self.obs[i] = 0.0
            for col in self.inc_cols:
                col[i] = 0
            self.inc_epoch[i] = 0
        else:
            task = self.tasks[task_index]
            self.task_index, self.key = task_index, key
            self.budget, self.reference = task.budget, task.regret_reference
            self._grid_list, self._task = task.epoch_grid_list, task
            if task is not self._row_task and not self._arms and not self._live:
                self._rows, self._row_task = task.forest.row_predictor(task.scaler), task
            self.cum, self.steps, self.inc_valid, self.inc_test, self.has_inc = 0.0, 0, 0.0, 0.0, False
            self.inc_test_clean = 0.0
            self.inc_cols, self.inc_epoch = [0] * len(COMPONENTS), 0
            self._inc_info: dict | None = None
            self.obs = [0.0] * len(OBS_KEYS)
        self.trained[i] = {}
        self.history[i] = []
        self.last[i] = None

    def task(self, i: int = 0) -> EnvTask:
        return self.tasks[int(self.task_of[i]) if self.vector else self.task_index]

    # ------------------------------------------------------------------------------ prediction
    def _predict(self, cols: list, epoch: Any, live: Any) -> tuple[Any, Any, Any]:
        """(metrics, norm, clean) of every live evaluation: metrics in their units (noise included, in the env's
        metric order), their observation entries (the task's scaler of the fitted-space outputs) and the
        noise-free metrics. Lists of floats, or arrays with a row per episode (zeros where not live)."""
        if self._arms:
            y, raw, clean = self._look_up(cols, epoch, live)
        elif self._live:
            y, raw, clean = self._train_live(cols, epoch, live)
        elif not self.vector:
            rows = self._rows
            encode_one(rows.xv, cols[:6], *cols[6:13], epoch)
            rows()  # metrics, raw outputs and their observation entries, in one kernel call
            if not self.noise:
                y = rows.y.tolist()
                return y, rows.scaled.tolist(), y
            raw = rows.raw[None, :].copy()
            y = self._noisy(raw, [np.asarray([c]) for c in cols], np.asarray([self.key], dtype=np.uint64),
                            self._noise_std[self.task_index], self.tasks[self.task_index])
            return y[0].tolist(), self._task.normalise(raw)[0].tolist(), rows.y.tolist()
        else:
            y, raw, clean = self._predict_batch(cols, epoch, live)
        if self.vector:
            return y, self._normalise(raw), clean
        return y, self._task.normalise(np.asarray([raw]))[0].tolist(), clean

    def _predict_batch(self, cols: list, epoch: Any, live: Any) -> tuple[Any, Any, Any]:
        """``_predict``'s surrogate for N episodes, with the fitted-space outputs in place of the entries."""
        y, raw = np.zeros((self.n, len(self.metrics))), np.zeros((self.n, len(self.metrics)))
        clean = np.zeros((self.n, len(self.metrics))) if self.noise else y
        for t_idx, task in enumerate(self.tasks):
            sel = live & (self.task_of == t_idx) if len(self.tasks) > 1 else live
            if not sel.any():
                continue
            if sel.all():  # every episode (the common case): no gathers
                sel, sc = slice(None), cols
            else:
                sc = [c[sel] for c in cols]
            x = encode_arrays(np.stack(sc[:6], axis=1), *sc[6:13], epoch[sel])
            r = task.forest.predict_raw(x)
            if self.noise:
                clean[sel] = task.forest.finish(r.copy())
                y[sel] = self._noisy(r, sc, self.key[sel], self._noise_std[t_idx], task)
            else:
                y[sel] = task.forest.finish(r.copy())
            raw[sel] = r
        return y, raw, clean

    def _look_up(self, cols: list, epoch: Any, live: Any) -> tuple[Any, Any, Any]:
        """``_predict`` for the arm backends (one task): the arms' curves at the epochs. With noise, "table"
        returns one measured seed of the run, drawn by the run's hash (the same seed again for the same run in
        the episode); "surrogate_arms" adds the run's seed noise as the surrogate backend does."""
        task = self.tasks[0]
        a = task.arms
        if not self.vector:
            run, e = cols[C_ARM], epoch - 1
            clean = a.clean[run, e].tolist()
            if not self.noise:
                return clean, a.clean_fitted[run, e].tolist(), clean
            keys, one = np.asarray([self.key], dtype=np.uint64), [np.asarray([c]) for c in cols]
            if a.curves is not None:
                slot = int(nz.run_hash(keys, one)[0] % np.uint64(a.n_seeds[run]))
                return a.curves[run, slot, e].tolist(), a.fitted[run, slot, e].tolist(), clean
            raw = a.clean_fitted[run, e][None, :].copy()
            y = self._noisy(raw, one, keys, self._noise_std[0], task)
            return y[0].tolist(), raw[0].tolist(), clean
        m = len(self.metrics)
        y, raw = np.zeros((self.n, m)), np.zeros((self.n, m))
        clean = np.zeros((self.n, m)) if self.noise else y
        if not live.any():
            return y, raw, clean
        run, e = cols[C_ARM][live], epoch[live] - 1
        clean[live] = a.clean[run, e]
        if not self.noise:
            raw[live] = a.clean_fitted[run, e]
        elif a.curves is not None:
            h = nz.run_hash(self.key[live], [c[live] for c in cols])
            slot = (h % a.n_seeds[run].astype(np.uint64)).astype(np.int64)
            y[live], raw[live] = a.curves[run, slot, e], a.fitted[run, slot, e]
        else:
            r = a.clean_fitted[run, e]  # fancy indexing: a copy
            y[live] = self._noisy(r, [c[live] for c in cols], self.key[live], self._noise_std[0], task)
            raw[live] = r
        return y, raw, clean

    def _train_live(self, cols: list, epoch: Any, live: Any) -> tuple[Any, Any, Any]:
        """``_predict`` for backend="live" (one task, no noise model: a real run's noise is real)."""
        task = self.tasks[0]
        if not self.vector:
            y, raw = task.train_live(cols, epoch)
            return y, raw, y
        y, raw = np.zeros((self.n, len(self.metrics))), np.zeros((self.n, len(self.metrics)))
        for i in np.flatnonzero(live):
            y[i], raw[i] = task.train_live([c[i].item() for c in cols], int(epoch[i]))
        return y, raw, y

    @staticmethod
    def _noisy(raw: np.ndarray, cols: list, keys: np.ndarray, std: np.ndarray, task: EnvTask) -> np.ndarray:
        """Add the run's normals times the seed-noise std to the fitted-space outputs ``raw`` (in place); return
        the noisy metrics."""
        raw += nz.normals(nz.run_hash(keys, cols), raw.shape[1]) * std
        return task.forest.finish(raw.copy())

    # ------------------------------------------------------------------------------ continuation
    def _run_key(self, cols: list, i: int) -> tuple:
        if self.vector:
            return tuple(c[i].item() for c in cols[:13])
        return tuple(cols[:13])

    def _charge(self, cols: list, epoch: Any, runtime: Any, live: Any) -> Any:
        """Cost of each live evaluation: its runtime, or with continuation only the epochs not trained yet."""
        if not self.continuation:
            return runtime
        cost = runtime.copy() if self.vector else runtime
        for i in (np.flatnonzero(live) if self.vector else (0,)):
            prev = self.trained[i].get(self._run_key(cols, i))
            if prev is not None:
                e, rt = (epoch[i], runtime[i]) if self.vector else (epoch, runtime)
                c = 0.0 if e <= prev[0] else max(rt - prev[1], 0.0)
                if self.vector:
                    cost[i] = c
                else:
                    cost = c
        return cost

    def _remember(self, cols: list, epoch: Any, runtime: Any, ok: Any) -> None:
        for i in (np.flatnonzero(ok) if self.vector else ((0,) if ok else ())):
            key = self._run_key(cols, i)
            e, rt = (int(epoch[i]), float(runtime[i])) if self.vector else (epoch, runtime)
            prev = self.trained[i].get(key)
            if prev is None or e > prev[0]:
                self.trained[i][key] = (e, rt)

    # ---------------------------------------------------------------------------------- step
    def step(self, cols: list, live: Any = True) -> tuple[Any, Any, Any, Any, dict]:
        """Apply decoded actions to the live episodes: (observation, reward, terminated, truncated, info)."""
        # one rule set for bools and bool arrays: `x ^ True` is "not x" for both; where/minimum come from xp
        xp = self.xp
        where, minimum = xp.where, xp.minimum
        epoch = self._grid[self.task_of, cols[C_EPOCH]] if self.vector else self._grid_list[cols[C_EPOCH]]
        y, norm, clean = self._predict(cols, epoch, live)
        runtime = y[self._i_rt]
        cost = self._charge(cols, epoch, runtime, live) if self.continuation else runtime
        budget = self.budget
        over = live & (self.cum + cost > budget)
        ok = live & (over ^ True)
        if self.continuation:
            self._remember(cols, epoch, runtime, ok)
        valid, test = y[self._i_va], y[self._i_te]
        prev_inc = self.inc_valid
        better = ok & ((self.has_inc ^ True) | (valid > prev_inc))
        self.inc_valid, self.inc_test, self.inc_test_clean, self.inc_epoch = xp.where_each(
            better, (valid, test, clean[self._i_te], epoch), (prev_inc, self.inc_test, self.inc_test_clean,
                                                              self.inc_epoch))
        self.has_inc = self.has_inc | better
        self.inc_cols = xp.where_each(better, cols, self.inc_cols)
        self.cum = where(ok, self.cum + cost, self.cum)
        self.steps = self.steps + live
        reward = self._reward(valid, cost, budget, prev_inc, norm, y, ok)
        obs = self.obs
        steps_used = minimum(self.steps / self.max_steps, 1.0)
        # an evaluation within the budget shows its metrics and the episode's state; any live step its steps used
        xp.put(obs, 0, _S_COST + 1, ok, xp.join(norm, [self.inc_valid / 100.0, minimum(self.cum / budget, 1.0),
                                                       steps_used, minimum(cost / budget, 1.0)]))
        xp.put(obs, _S_STEPS, _S_STEPS + 1, live, steps_used)
        terminated = over | (ok & (self.cum >= budget))
        truncated = live & (self.steps >= self.max_steps) & (terminated ^ True)
        info = self._info(cols, epoch, y, cost, budget, over, ok, live, better)
        if self.record:
            self._record(ok, cost, valid)
        return obs, reward, terminated, truncated, info

    def _normalise(self, y: np.ndarray) -> np.ndarray:
        """The observation's metric entries of every sub-environment (each on its own task's scale)."""
        if len(self.tasks) == 1:
            return self.tasks[0].normalise(y)
        out = np.zeros((self.n, _N_METRIC_SLOTS))
        for t_idx, task in enumerate(self.tasks):
            sel = self.task_of == t_idx
            if sel.any():
                out[sel] = task.normalise(y[sel])
        return out

    def _reward(self, valid: Any, cost: Any, budget: Any, prev_inc: Any, norm: Any, y: Any, ok: Any) -> Any:
        if self._user:
            return self._user_reward(y, cost, budget, prev_inc, ok)
        # a step that reveals nothing new (continuation: a run already trained that far, charged 0) earns nothing,
        # else a per-evaluation reward could be farmed by repeating one action for free
        earns = ok & (cost > 0.0)
        if not self.vector and not earns:
            return 0.0
        view = StepView(valid, cost, budget, self.inc_valid, prev_inc, self.cum, self.steps, self.max_steps, norm,
                        self.cost_weight, self.weights)
        r = self._reward_fn(view, self.xp)
        return self.xp.where(earns, r, 0.0) if self.vector else r

    def _user_reward(self, y: Any, cost: Any, budget: Any, prev_inc: Any, ok: Any) -> Any:
        out = np.zeros(self.n) if self.vector else 0.0
        for i in (np.flatnonzero(ok) if self.vector else ((0,) if ok else ())):
            at = self._getter(i)
            metrics = dict(zip(self.metrics, (y[i].tolist() if self.vector else y)))
            state = {"budget": at(budget), "cost": at(cost), "cumulative_cost": at(self.cum),
                     "incumbent_valid_acc": at(self.inc_valid), "previous_incumbent_valid_acc": at(prev_inc),
                     "step": at(self.steps), "max_steps": self.max_steps}
            r = call_user_reward(self.reward, metrics, state)
            if self.vector:
                out[i] = r
            else:
                out = r
        return out

    # ---------------------------------------------------------------------------------- info
    def _info(self, cols: list, epoch: Any, y: Any, cost: Any, budget: Any, over: Any, ok: Any, live: Any,
              better: Any) -> dict:
        best = self.reference
        info = {"task": self._task_names(), "budget": budget, "cost": cost, "cumulative_cost": self.cum,
                "over_budget": over, "regret_reference": best,
                "config": config_of(cols, self.vector), "fidelity": fidelity_of(cols, epoch),
                "incumbent_valid_acc": self.inc_valid, "incumbent_test_acc": self.inc_test}
        if self.vector:
            info["valid_acc"] = np.where(ok, y[:, self.c_valid], np.nan)
            info["test_acc"] = np.where(ok, y[:, self.c_test], np.nan)
            info["metrics"] = {m: np.where(ok, y[:, j], np.nan) for j, m in enumerate(self.metrics)}
            info["incumbent"] = {**config_of(self.inc_cols, True), **fidelity_of(self.inc_cols, self.inc_epoch)}
            info["regret"] = np.where(self.has_inc, best - self.inc_test_clean, np.nan)
            return vector_info(info, live, ok, self.has_inc)
        if ok:
            info["valid_acc"], info["test_acc"] = y[self.c_valid], y[self.c_test]
            info["metrics"] = dict(zip(self.metrics, y))
        if better:
            self._inc_info = {**info["config"], **info["fidelity"]}
        if self.has_inc:  # no incumbent yet (the first evaluation did not fit the budget): neither key
            info["incumbent"] = dict(self._inc_info)
            info["regret"] = best - self.inc_test_clean
        return info

    def _task_names(self) -> Any:
        if self.vector:
            return np.array([t.name for t in self.tasks], dtype=object)[self.task_of]
        return self._task.name

    def reset_info(self, i: Any) -> dict:
        """What ``reset`` tells about episode(s) ``i``: task, budget, epoch grid (arrays in the vector back end)."""
        if self.vector:
            return {"task": self._task_names()[i], "budget": self._budgets[self.task_of[i]],
                    "epoch_grid": self._grid[self.task_of[i]]}
        task = self.tasks[self.task_index]
        return {"task": task.name, "budget": task.budget, "epoch_grid": list(task.epoch_grid_list)}

    def _getter(self, i: int) -> Callable[[Any], Any]:
        """Episode ``i``'s Python value of a per-episode quantity."""
        return (lambda v: v[i].item()) if self.vector else (lambda v: v)

    def _record(self, ok: Any, cost: Any, valid: Any) -> None:
        for i in (np.flatnonzero(ok) if self.vector else ((0,) if ok else ())):
            at = self._getter(i)
            self.history[i].append((at(self.cum), at(self.inc_valid), at(valid), at(cost)))
