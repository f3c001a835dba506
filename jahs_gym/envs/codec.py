"""Actions of JAHS-v0: the four action spaces and one decoder from an action to the 14 decoded components.

A decoded action is a list of 14 columns, in :data:`COMPONENTS` order: Op1..Op6 (op indices), Activation
(index), TrivialAugment (bool), LearningRate, WeightDecay, N, W, Resolution (values) and the index into the
task's epoch grid. For one action each column is a Python scalar, for a batch a numpy array. Index
components are looked up in one set of value tables (:attr:`ActionCodec.tables`), whichever the action type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from jahs_gym.space import (
    ACTIVATIONS,
    LR_RANGE,
    N_VALUES,
    OP_KEYS,
    OPS,
    RESOLUTIONS,
    W_VALUES,
    WD_RANGE,
    in_range,
    sample_configs,
)

ACTION_TYPES = ("multidiscrete", "discrete", "box", "dict")
ARM_ACTION_TYPES = ("multidiscrete", "discrete")  # the arm backends (a table's runs) take these
COMPONENTS = (*OP_KEYS, "Activation", "TrivialAugment", "LearningRate", "WeightDecay", "N", "W", "Resolution",
              "epoch")
COMPONENT_DTYPES = (np.int64,) * 7 + (np.bool_, np.float64, np.float64, np.int64, np.int64, np.float64, np.int64)
C_ACT, C_TA, C_LR, C_WD, C_N, C_W, C_R, C_EPOCH = range(6, 14)
C_ARM = 14  # the arm backends append the arm (the run's index) as a 15th column
BOX_DIMS = len(COMPONENTS)


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}={v!r} must be a positive integer")
    return int(v)


class ActionCodec:
    """The action space of one action type and its decoder (one action or a batch of ``n``)."""

    def __init__(self, action_type: str, n_lr: int, n_wd: int, n_epochs: int, n_arms: int, arm_seed: int,
                 runs: list[np.ndarray] | None = None) -> None:
        """Make the action space and its value tables.

        Args:
            action_type: One of :data:`ACTION_TYPES` (:data:`ARM_ACTION_TYPES` with ``runs``).
            n_lr: Values on the LearningRate log grid.
            n_wd: Values on the WeightDecay log grid.
            n_epochs: Size of the epoch grid.
            n_arms: The ``"discrete"`` type's pool of (config, fidelity, epoch index) arms.
            arm_seed: Seed of that pool (>= 0).
            runs: The 13 decoded columns of an arm backend's runs (the table's trained (config, fidelity) pairs);
                the action then picks a run and an epoch index: ``MultiDiscrete([runs, n_epochs])`` or
                ``Discrete(runs * n_epochs)`` (action ``run * n_epochs + epoch index``).

        Raises:
            ValueError: A bad argument, naming it and what is allowed.
        """
        if action_type not in ACTION_TYPES:
            raise ValueError(f"action_type={action_type!r} is not allowed; allowed: {list(ACTION_TYPES)}")
        if runs is not None and action_type not in ARM_ACTION_TYPES:
            raise ValueError(f"action_type={action_type!r} with a table's arms (backend='table' or "
                             f"'surrogate_arms'); allowed: {list(ARM_ACTION_TYPES)}: a run of the table and an epoch")
        n_lr, n_wd, n_epochs, n_arms = (_positive_int(k, v) for k, v in
                                        (("n_lr", n_lr), ("n_wd", n_wd), ("n_epochs", n_epochs), ("n_arms", n_arms)))
        if isinstance(arm_seed, bool) or not isinstance(arm_seed, (int, np.integer)) or arm_seed < 0:
            raise ValueError(f"arm_seed={arm_seed!r} must be a non-negative integer")
        self.type = action_type
        self.lr_grid, self.wd_grid = np.geomspace(*LR_RANGE, n_lr), np.geomspace(*WD_RANGE, n_wd)
        self.n_epochs = n_epochs
        # value tables of the index components (lists for one action, arrays for a batch)
        self.tables: list[list] = [list(range(len(OPS)))] * 6 + [
            list(range(len(ACTIVATIONS))), [False, True], self.lr_grid.tolist(), self.wd_grid.tolist(),
            list(N_VALUES), list(W_VALUES), list(RESOLUTIONS), list(range(n_epochs))]
        self._np_tables = [np.asarray(t) for t in self.tables]
        self._index_tables = [dict(enumerate(t)) for t in self.tables]
        self.nvec = np.array([len(t) for t in self.tables], dtype=np.int64)
        self._nvec_list = self.nvec.tolist()
        self.runs = runs
        if runs is not None:
            self.n_runs = len(runs[0])
            self._run_rows = [list(r) for r in zip(*(c.tolist() for c in runs))]
            self.space = (spaces.MultiDiscrete([self.n_runs, n_epochs]) if action_type == "multidiscrete"
                          else spaces.Discrete(self.n_runs * n_epochs))
        elif action_type == "multidiscrete":
            self.space: spaces.Space = spaces.MultiDiscrete(self.nvec)
        elif action_type == "discrete":
            self.space = spaces.Discrete(n_arms)
            self.arms = self._draw_arms(n_arms, arm_seed)
            self._arm_rows = [list(r) for r in zip(*(c.tolist() for c in self.arms))]
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

    def _draw_arms(self, n_arms: int, arm_seed: int) -> list[np.ndarray]:
        """A fixed pool of (config, fidelity, epoch index) arms, as 14 decoded columns."""
        rng = np.random.default_rng(arm_seed)
        cfgs = sample_configs(n_arms, rng)
        cols = [np.array([getattr(c, k) for c in cfgs], dtype=np.int64) for k in OP_KEYS]
        cols += [np.array([ACTIVATIONS.index(c.Activation) for c in cfgs], dtype=np.int64),
                 np.array([c.TrivialAugment for c in cfgs], dtype=bool),
                 np.array([c.LearningRate for c in cfgs]), np.array([c.WeightDecay for c in cfgs])]
        cols += [np.asarray(N_VALUES)[rng.integers(0, 3, n_arms)], np.asarray(W_VALUES)[rng.integers(0, 3, n_arms)],
                 np.asarray(RESOLUTIONS)[rng.integers(0, 3, n_arms)], rng.integers(0, self.n_epochs, n_arms)]
        return cols

    # ------------------------------------------------------------------------------------ decoding
    def decode(self, action: Any) -> list:
        """Decode one action.

        Args:
            action: An element of :attr:`space`.

        Returns:
            The 14 components (:data:`COMPONENTS`) as Python scalars, and the run's index as a 15th on an arm
            backend.

        Raises:
            ValueError: The action is not in the space (outside it, NaN, wrong shape or dtype), naming the bad
                entry.
        """
        t = self.type
        if self.runs is not None:
            run, e = self._run_action(action)
            return [*self._run_rows[run], e, run]
        if t == "multidiscrete":
            if type(action) is np.ndarray and action.shape == (BOX_DIMS,) and action.dtype.kind in "iu":
                v = action.tolist()
            else:
                v = self._index_matrix(action, 1, single=True)[0].tolist()
            try:  # dict tables: an index outside 0..n-1 (a negative one too) is a KeyError
                return list(map(dict.__getitem__, self._index_tables, v))
            except KeyError:
                pass
            i = next(i for i, (x, n) in enumerate(zip(v, self._nvec_list)) if not 0 <= x < n)
            raise ValueError(f"action[{i}]={v[i]} ({COMPONENTS[i]}) is out of range; allowed: "
                             f"0..{self._nvec_list[i] - 1} (action space {self.space})")
        if t == "discrete":
            return list(self._arm_rows[self._arm_index(action)])
        batch = ({k: np.asarray(v)[None] for k, v in action.items()} if isinstance(action, Mapping)
                 else np.asarray(action)[None])
        return [c[0].item() for c in self.decode_batch(batch, 1, single=True)]

    def decode_batch(self, actions: Any, n: int, single: bool = False) -> list[np.ndarray]:
        """Decode a batch of actions.

        Args:
            actions: ``n`` actions, as the batched space holds them.
            n: The batch size.
            single: The batch wraps one action of :meth:`decode` (its errors then speak of one action).

        Returns:
            14 arrays of length ``n`` (:data:`COMPONENTS`), 15 with a table's arms (the run's index last).

        Raises:
            ValueError: An action is not in the space, naming the first bad entry.
        """
        t = self.type
        if self.runs is not None:
            run, e = self._run_actions(actions, n)
            return [*(c[run] for c in self.runs), e, run]
        if t == "multidiscrete":
            v = self._index_matrix(actions[0] if single else actions, n, single)
            bad = (v < 0) | (v >= self.nvec)
            if bad.any():
                self._raise_at(bad, v, single, lambda k: f"allowed: 0..{self.nvec[k] - 1}")
            return [tab[v[:, k]] for k, tab in enumerate(self._np_tables)]
        if t == "discrete":
            v = self._discrete_batch(actions, n)
            return [c[v] for c in self.arms]
        if t == "box":
            v = np.asarray(actions)
            if v.shape != (n, BOX_DIMS) or v.dtype.kind != "f":
                shape = (BOX_DIMS,) if single else (n, BOX_DIMS)
                what = "action has" if single else "actions have"
                raise ValueError(f"{what} shape {v.shape[1:] if single else v.shape} and dtype {v.dtype}; "
                                 f"expected {shape} floats (action space {self.space})")
            bad = np.isnan(v) | (v < -1) | (v > 1)
            if bad.any():
                self._raise_at(bad, v, single, lambda k: "allowed: floats in [-1, 1]")
            u = (v.astype(np.float64) + 1.0) / 2.0
            idx = np.minimum((u * self.nvec).astype(np.int64), self.nvec - 1)
            cols = [tab[idx[:, k]] for k, tab in enumerate(self._np_tables)]
            cols[C_LR] = _log_scale(u[:, C_LR], LR_RANGE)
            cols[C_WD] = _log_scale(u[:, C_WD], WD_RANGE)
            return cols
        return self._decode_dict(actions, n, single)

    # ------------------------------------------------------------------------------------ arms
    def _run_action(self, a: Any) -> tuple[int, int]:
        """One arm action -> (run, epoch index), or one ValueError naming the bad value."""
        n_e = self.n_epochs
        if self.type == "discrete":
            k = self._arm_index(a)
            return k // n_e, k % n_e
        v = np.asarray(a)
        if v.shape != (2,) or v.dtype.kind not in "iu":
            raise ValueError(f"action {a!r} has shape {v.shape} and dtype {v.dtype}; expected (2,) integers "
                             f"[run, epoch index] (action space {self.space})")
        run, e = int(v[0]), int(v[1])
        if not 0 <= run < self.n_runs:
            raise ValueError(f"action[0]={run} (run) is out of range; allowed: 0..{self.n_runs - 1}")
        if not 0 <= e < n_e:
            raise ValueError(f"action[1]={e} (epoch index) is out of range; allowed: 0..{n_e - 1}")
        return run, e

    def _discrete_batch(self, actions: Any, n: int) -> np.ndarray:
        """``n`` Discrete actions as an integer array, or one ValueError naming the first bad one."""
        v = np.asarray(actions)
        if v.shape != (n,) or v.dtype.kind not in "iu":
            raise ValueError(f"actions have shape {v.shape} and dtype {v.dtype}; expected ({n},) integers")
        bad = (v < 0) | (v >= self.space.n)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"actions[{i}]={int(v[i])} is out of range; allowed: 0..{self.space.n - 1}")
        return v

    def _run_actions(self, actions: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.type == "discrete":
            v = self._discrete_batch(actions, n)
            return v // self.n_epochs, v % self.n_epochs
        v = np.asarray(actions)
        if v.shape != (n, 2) or v.dtype.kind not in "iu":
            raise ValueError(f"actions have shape {v.shape} and dtype {v.dtype}; expected ({n}, 2) integers "
                             "[run, epoch index]")
        bad = (v < 0) | (v >= np.array([self.n_runs, self.n_epochs]))
        if bad.any():
            env, k = map(int, np.argwhere(bad)[0])
            what = ("run", self.n_runs) if k == 0 else ("epoch index", self.n_epochs)
            raise ValueError(f"actions[{env}, {k}]={int(v[env, k])} ({what[0]}) is out of range; allowed: "
                             f"0..{what[1] - 1}")
        return v[:, 0].astype(np.int64), v[:, 1].astype(np.int64)

    # ------------------------------------------------------------------------------------ checks
    def _index_matrix(self, actions: Any, n: int, single: bool) -> np.ndarray:
        """(n, 14) integer actions; one action (``single``) is given as (14,)."""
        v = np.asarray(actions)
        shape = (BOX_DIMS,) if single else (n, BOX_DIMS)
        if v.shape != shape or v.dtype.kind not in "iu":
            what = "action has" if single else "actions have"
            raise ValueError(f"{what} shape {v.shape} and dtype {v.dtype}; expected {shape} integers "
                             f"(action space {self.space})")
        return v.reshape(n, BOX_DIMS)

    def _raise_at(self, bad: np.ndarray, v: np.ndarray, single: bool, allowed: Any) -> None:
        env, k = map(int, np.argwhere(bad)[0])
        where = f"action[{k}]" if single else f"actions[{env}, {k}]"
        value = v[env, k].item()
        why = "is NaN" if value != value else "is out of range"
        raise ValueError(f"{where}={value!r} ({COMPONENTS[k]}) {why}; {allowed(k)} (action space {self.space})")

    def _arm_index(self, a: Any) -> int:
        if isinstance(a, np.ndarray) and a.shape in ((), (1,)) and a.dtype.kind in "iu":
            a = int(a.reshape(-1)[0])
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise ValueError(f"action {a!r} must be an integer arm index in 0..{self.space.n - 1}")
        if not 0 <= a < self.space.n:
            raise ValueError(f"action {a} is out of range; allowed: 0..{self.space.n - 1}")
        return int(a)

    def _decode_dict(self, actions: Any, n: int, single: bool) -> list[np.ndarray]:
        keys = list(self.space.spaces)
        if not isinstance(actions, Mapping):
            raise ValueError(f"action must be a dict with keys {keys}; got {type(actions).__name__}")
        if set(actions) != set(keys):
            raise ValueError(f"action keys {sorted(actions)} differ from the allowed keys {keys}")
        cols = []
        for k in COMPONENTS:
            sp = self.space.spaces[k]
            v = np.asarray(actions[k])
            v = v.reshape(n) if v.size == n else v
            who = f"action[{k!r}]" if single else f"actions[{k!r}]"
            if v.shape != (n,):
                raise ValueError(f"{who} has shape {v.shape[1:] if single else v.shape}; expected one value "
                                 f"per {'action' if single else 'sub-environment'}")
            if isinstance(sp, spaces.Box):
                lo, hi = LR_RANGE if k == "LearningRate" else WD_RANGE
                f = v.astype(np.float64) if v.dtype.kind in "iuf" else None
                if f is None or not in_range(f, lo, hi).all():  # the space's rule: a few float32 ulps are clamped
                    raise ValueError(f"{who}={_show(v, single)} is not allowed; allowed: a float in [{lo:g}, {hi:g}]")
                cols.append(np.clip(f, lo, hi))
            else:
                if v.dtype.kind not in "iu" or (v < 0).any() or (v >= sp.n).any():
                    raise ValueError(f"{who}={_show(v, single)} is not allowed; allowed: an integer in 0..{sp.n - 1}")
                cols.append(self._np_tables[COMPONENTS.index(k)][v])
        return cols


def _show(v: np.ndarray, single: bool) -> Any:
    return v.reshape(-1)[0].item() if single and v.size else v.tolist()


def _log_scale(u: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    lo, hi = math.log10(rng[0]), math.log10(rng[1])
    return 10.0 ** (lo + u * (hi - lo))
