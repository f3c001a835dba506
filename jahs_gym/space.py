"""The JAHS-Bench-201 search space: configurations, fidelities, validation and sampling.

Every entry point (``Config``/``Fidelity``, ``Benchmark`` dicts and DataFrames, JAHS-v0's dict actions) checks
values with the rules of :mod:`jahs_gym.checks`, once: a choice must be one of its values (no ``True`` for ``1``), a
real number must lie in its range, where a value within a few float32 ulps of a bound (float32 rounding,
``exp(log(b))``) is clamped to that bound. Those rules with ``SpaceError``, and the numeric encoding of
:mod:`jahs_gym.encoding`, are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any

import numpy as np

from jahs_gym.checks import (  # noqa: F401  (the value rules; these names stay importable from here)
    SpaceError,
    _check_choice,
    _reject_unknown,
    bound_slack,
    check_epoch,
    check_real,
    in_range,
)

OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
OP_KEYS: tuple[str, ...] = tuple(f"Op{i}" for i in range(1, 7))
ACTIVATIONS: tuple[str, ...] = ("ReLU", "Hardswish", "Mish")
OPTIMIZERS: tuple[str, ...] = ("SGD",)
N_VALUES: tuple[int, ...] = (1, 3, 5)
W_VALUES: tuple[int, ...] = (4, 8, 16)
RESOLUTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)
LR_RANGE: tuple[float, float] = (1e-3, 1.0)
WD_RANGE: tuple[float, float] = (1e-5, 1e-2)
CONFIG_KEYS: tuple[str, ...] = (*OP_KEYS, "Activation", "TrivialAugment", "Optimizer", "LearningRate",
                                 "WeightDecay")
FIDELITY_KEYS: tuple[str, ...] = ("N", "W", "Resolution", "epoch")


def _check_op(key: str, value: Any) -> int:
    if isinstance(value, str):
        if value in OPS:
            return OPS.index(value)
        raise SpaceError(f"Config: {key}={value!r} is not an op; allowed: {list(OPS)} or their indices 0..4")
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) and 0 <= int(value) < len(OPS):
        return int(value)
    if isinstance(value, float) and value.is_integer() and 0 <= value < len(OPS):
        return int(value)
    raise SpaceError(f"Config: {key}={value!r} is not allowed; allowed: indices 0..4 or names {list(OPS)}")


@dataclass(frozen=True)
class Config:
    """One point of the JAHS-Bench-201 space: a cell (Op1..Op6) plus training hyperparameters.

    Ops are stored as indices into :data:`OPS`; names are accepted too.
    """

    Op1: int
    Op2: int
    Op3: int
    Op4: int
    Op5: int
    Op6: int
    Activation: str = "ReLU"
    TrivialAugment: bool = False
    Optimizer: str = "SGD"
    LearningRate: float = 0.1
    WeightDecay: float = 5e-4

    def __post_init__(self) -> None:
        for key in OP_KEYS:
            object.__setattr__(self, key, _check_op(key, getattr(self, key)))
        object.__setattr__(self, "Activation", _check_choice("Config", "Activation", self.Activation, ACTIVATIONS))
        object.__setattr__(self, "TrivialAugment",
                           _check_choice("Config", "TrivialAugment", self.TrivialAugment, (False, True)))
        object.__setattr__(self, "Optimizer", _check_choice("Config", "Optimizer", self.Optimizer, OPTIMIZERS))
        object.__setattr__(self, "LearningRate", check_real("Config", "LearningRate", self.LearningRate, *LR_RANGE))
        object.__setattr__(self, "WeightDecay", check_real("Config", "WeightDecay", self.WeightDecay, *WD_RANGE))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a dict of the config keys (unknown keys are refused).

        Args:
            data: Op1..Op6 and optionally the other config keys (the rest take the defaults).

        Returns:
            The checked Config.

        Raises:
            SpaceError: An unknown or missing key (and, from the constructor, a value not allowed).
        """
        _reject_unknown("Config", data, CONFIG_KEYS)
        missing = [k for k in OP_KEYS if k not in data]
        if missing:
            raise SpaceError(f"Config: missing key(s) {missing}; every cell needs Op1..Op6")
        return cls(**dict(data))

    def as_dict(self) -> dict[str, Any]:
        """The config keys and values (ops as indices).

        Returns:
            Key -> value, in field order.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def ops(self) -> tuple[str, ...]:
        """The six ops' names, Op1..Op6."""
        return tuple(OPS[getattr(self, k)] for k in OP_KEYS)

    @property
    def config_id(self) -> str:
        """A stable 12-hex-digit id (sha1 of the canonical JSON of :meth:`as_dict`)."""
        d = self.as_dict()
        d["LearningRate"] = float(f"{self.LearningRate:.12g}")
        d["WeightDecay"] = float(f"{self.WeightDecay:.12g}")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Fidelity:
    """Cells per stage N, first-stage width W, resolution fraction and the number of epochs trained."""

    N: int = 5
    W: int = 16
    Resolution: float = 1.0
    epoch: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "N", int(_check_choice("Fidelity", "N", self.N, N_VALUES)))
        object.__setattr__(self, "W", int(_check_choice("Fidelity", "W", self.W, W_VALUES)))
        object.__setattr__(self, "Resolution",
                           float(_check_choice("Fidelity", "Resolution", self.Resolution, RESOLUTIONS)))
        object.__setattr__(self, "epoch", check_epoch("Fidelity", self.epoch))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fidelity:
        """Build from a dict of fidelity keys (unknown keys are refused; missing ones take the defaults).

        Args:
            data: Some of N, W, Resolution and epoch.

        Returns:
            The checked Fidelity.
        """
        _reject_unknown("Fidelity", data, FIDELITY_KEYS)
        return cls(**dict(data))

    def as_dict(self) -> dict[str, Any]:
        """The fidelity keys and values.

        Returns:
            N, W, Resolution and epoch -> value.
        """
        return {"N": self.N, "W": self.W, "Resolution": self.Resolution, "epoch": self.epoch}

    @property
    def fidelity_id(self) -> str:
        """Id of the (N, W, Resolution) triple, e.g. ``N3-W8-R0.5`` (the epoch is not part of it)."""
        return fidelity_id(self.N, self.W, self.Resolution)

    def check_epoch(self, max_epochs: int) -> None:
        """Refuse an epoch above a task's maximum with :func:`check_epoch`'s SpaceError.

        Args:
            max_epochs: The task protocol's max epoch count.
        """
        check_epoch("Fidelity", self.epoch, max_epochs)


def fidelity_id(n: int, w: int, resolution: float) -> str:
    """The id of an (N, W, Resolution) triple, e.g. ``N3-W8-R0.5``.

    Args:
        n: Cells per stage.
        w: First-stage width.
        resolution: Resolution fraction.

    Returns:
        The id.
    """
    return f"N{int(n)}-W{int(w)}-R{float(resolution):g}"


def task_id(config: Config, n: int, w: int, resolution: float, seed: int) -> str:
    """The id of one run (config, fidelity, seed), e.g. ``f7ac64ef440c-N1-W4-R0.25-s0``: a plan's task id and the
    shard's file name in run and live folders.

    Args:
        config: The configuration.
        n: Cells per stage.
        w: First-stage width.
        resolution: Resolution fraction.
        seed: The training seed.

    Returns:
        The id.
    """
    return f"{config.config_id}-{fidelity_id(n, w, resolution)}-s{seed}"


def all_fidelities() -> list[tuple[int, int, float]]:
    """The 27 (N, W, Resolution) combinations.

    Returns:
        The triples, N slowest and Resolution fastest.
    """
    return [(n, w, r) for n in N_VALUES for w in W_VALUES for r in RESOLUTIONS]


def split_dict(data: Mapping[str, Any], default_epoch: int = 1) -> tuple[Config, Fidelity]:
    """Split a JAHS-Bench-201 style dict (config keys plus N, W, Resolution, optional epoch).

    Missing fidelity keys take the full-fidelity defaults N=5, W=16, Resolution=1.0, as in
    JAHS-Bench-201.

    Args:
        data: Config keys plus some of N, W, Resolution and epoch (any other key is refused).
        default_epoch: The epoch when ``data`` has none.

    Returns:
        The checked config and fidelity.
    """
    _reject_unknown("config", data, CONFIG_KEYS + FIDELITY_KEYS)
    cfg = Config.from_dict({k: v for k, v in data.items() if k in CONFIG_KEYS})
    fid = {k: v for k, v in data.items() if k in FIDELITY_KEYS}
    fid.setdefault("epoch", default_epoch)
    return cfg, Fidelity.from_dict(fid)


def as_generator(seed: Any, name: str = "seed") -> np.random.Generator:
    """A numpy Generator from None, an integer >= 0, a Generator, or a legacy RandomState (one draw seeds it).

    Args:
        seed: The seed.
        name: The argument's name in the error.

    Returns:
        A Generator (a fresh one seeded by ``seed``; for a Generator, one seeded from it).

    Raises:
        ValueError: Any other seed (a bool, a negative or non-integer number).
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"{name}={seed!r} is not allowed; allowed: None, an integer >= 0, a numpy Generator or "
                         "RandomState")
    return np.random.default_rng(int(seed))


def sample_config(seed: int | np.random.Generator | None = None) -> Config:
    """Sample a configuration uniformly (log-uniform for LearningRate and WeightDecay).

    Args:
        seed: Anything :func:`as_generator` takes.

    Returns:
        The configuration.
    """
    return sample_configs(1, seed)[0]


def sample_configs(n: int, seed: int | np.random.Generator | None = None) -> list[Config]:
    """Sample ``n`` configurations as :func:`sample_config` does.

    Args:
        n: How many.
        seed: Anything :func:`as_generator` takes.

    Returns:
        The configurations.
    """
    rng = as_generator(seed)
    ops = rng.integers(0, len(OPS), size=(n, 6))
    act = rng.integers(0, len(ACTIVATIONS), size=n)
    ta = rng.integers(0, 2, size=n)
    lr = np.exp(rng.uniform(np.log(LR_RANGE[0]), np.log(LR_RANGE[1]), size=n))
    wd = np.exp(rng.uniform(np.log(WD_RANGE[0]), np.log(WD_RANGE[1]), size=n))
    return [Config(*(int(o) for o in ops[i]), Activation=ACTIVATIONS[act[i]], TrivialAugment=bool(ta[i]),
                   LearningRate=float(lr[i]), WeightDecay=float(wd[i])) for i in range(n)]


# ------------------------------------------------------------------------------- DataFrames
ROW_KEYS: tuple[str, ...] = (*CONFIG_KEYS, *FIDELITY_KEYS)
_RANGES = {"LearningRate": LR_RANGE, "WeightDecay": WD_RANGE}


def _scalar_rule(key: str, max_epochs: int) -> Any:
    """The scalar check of one column's values (as Config and Fidelity apply it), returning the encoded value."""
    if key in OP_KEYS:
        return lambda v: _check_op(key, v)
    if key == "Activation":
        return lambda v: ACTIVATIONS.index(_check_choice("Config", key, v, ACTIVATIONS))
    if key == "TrivialAugment":
        return lambda v: _check_choice("Config", key, v, (False, True))
    if key == "Optimizer":
        return lambda v: _check_choice("Config", key, v, OPTIMIZERS)
    if key in _RANGES:
        return lambda v: check_real("Config", key, v, *_RANGES[key])
    if key == "epoch":
        return lambda v: check_epoch("Fidelity", v, max_epochs)
    allowed = {"N": N_VALUES, "W": W_VALUES, "Resolution": RESOLUTIONS}[key]
    return lambda v: _check_choice("Fidelity", key, v, allowed)


def _column(key: str, values: np.ndarray, max_epochs: int) -> np.ndarray:
    """One column checked value by value with the scalar rule (once per distinct value of a typed column)."""
    rule = _scalar_rule(key, max_epochs)

    def check(v: Any, rows: Any) -> Any:
        try:
            return rule(v)
        except SpaceError as e:
            raise SpaceError(f"query row {int(np.flatnonzero(rows)[0]) if rows is not None else 0}: {e}") from None

    if key in _RANGES and values.dtype.kind in "iuf":  # the real check, vectorised (same rule)
        v = values.astype(np.float64)
        ok = in_range(v, *_RANGES[key])
        if not ok.all():
            check(v[~ok][0].item(), ~ok)
        return np.clip(v, *_RANGES[key])
    if values.dtype.kind == "O":  # any Python object: each value as the scalar API sees it
        out = []
        for i, x in enumerate(values):
            try:
                out.append(rule(x))
            except SpaceError as e:
                raise SpaceError(f"query row {i}: {e}") from None
        return np.asarray(out)
    uniq, inv = np.unique(values, return_inverse=True)
    inv = inv.reshape(-1)
    return np.asarray([check(u.item(), inv == j) for j, u in enumerate(uniq)])[inv]


def frame_columns(df: Any, max_epochs: int) -> dict[str, np.ndarray]:
    """Check every row of a DataFrame with the scalar rules of Config and Fidelity; the encoder's inputs.

    Returns ``ops`` (rows, 6) op indices, ``activation`` indices, ``trivial_augment``, ``learning_rate`` and
    ``weight_decay`` (clamped as :func:`check_real` clamps), ``n``, ``w``, ``resolution`` and ``epoch``. The first
    bad value gets one ``SpaceError`` naming its row, as the scalar API words it.

    Args:
        df: The DataFrame, with exactly the columns :data:`ROW_KEYS`.
        max_epochs: The largest epoch allowed.

    Returns:
        The columns named above, as arrays.

    Raises:
        SpaceError: Not a DataFrame, a missing or unknown column, or a bad value.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise SpaceError(f"query needs a pandas DataFrame with columns {list(ROW_KEYS)}; got {type(df).__name__}")
    missing = [c for c in ROW_KEYS if c not in df.columns]
    if missing:
        raise SpaceError(f"query: missing column(s) {missing}; needed: {list(ROW_KEYS)}")
    unknown = [c for c in df.columns if c not in ROW_KEYS]
    if unknown:
        raise SpaceError(f"query: unknown column(s) {unknown}; allowed: {list(ROW_KEYS)}")
    col = {k: _column(k, df[k].to_numpy(), max_epochs) for k in ROW_KEYS}
    return {"ops": np.stack([col[k].astype(np.intp) for k in OP_KEYS], axis=1).reshape(-1, 6),
            "activation": col["Activation"].astype(np.intp), "trivial_augment": col["TrivialAugment"].astype(bool),
            "learning_rate": col["LearningRate"].astype(np.float64),
            "weight_decay": col["WeightDecay"].astype(np.float64), "n": col["N"].astype(np.int64),
            "w": col["W"].astype(np.int64), "resolution": col["Resolution"].astype(np.float64),
            "epoch": col["epoch"].astype(np.int64)}


# the numeric encoding's home is jahs_gym.encoding; these names stay importable from here
from jahs_gym.encoding import (  # noqa: E402, F401
    ENCODING,
    FEATURES,
    N_FEATURES,
    encode,
    encode_arrays,
    encode_frame,
    encode_one,
)
