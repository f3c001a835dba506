"""JAHS-v0's info dicts: the config and fidelity of a decoded action, and Gymnasium's vector form of an info
(arrays with ``_key`` masks), a reset's info merged into the step of a sub-environment that autoreset."""

from __future__ import annotations

from typing import Any

import numpy as np

from jahs_gym.space import ACTIVATIONS

_ACTIVATIONS = np.asarray(ACTIVATIONS, dtype=object)
# info keys revealed only for evaluations within the budget, and only once there is an incumbent
_REVEALED = ("valid_acc", "test_acc", "metrics")
_INCUMBENT = ("incumbent", "regret")  # only once there is an incumbent


def config_of(c: list, vector: bool) -> dict:
    """The JAHS-Bench-201 config of decoded action columns.

    Args:
        c: The decoded columns (:data:`jahs_gym.envs.codec.COMPONENTS`): Python scalars, or arrays for ``vector``.
        vector: Whether the columns are arrays (one entry per sub-environment).

    Returns:
        The config's keys (Op1..Op6, Activation, TrivialAugment, Optimizer, LearningRate, WeightDecay).
    """
    if vector:
        act, sgd = _ACTIVATIONS[c[6]], np.full(len(c[6]), "SGD", dtype=object)
    else:
        act, sgd = ACTIVATIONS[c[6]], "SGD"
    return {"Op1": c[0], "Op2": c[1], "Op3": c[2], "Op4": c[3], "Op5": c[4], "Op6": c[5], "Activation": act,
            "TrivialAugment": c[7], "Optimizer": sgd, "LearningRate": c[8], "WeightDecay": c[9]}


def fidelity_of(cols: list, epoch: Any) -> dict:
    """N, W, Resolution and epoch of decoded action columns.

    Args:
        cols: The decoded columns (scalars or arrays).
        epoch: The epoch (not the grid index) of each.

    Returns:
        The fidelity's keys.
    """
    return {"N": cols[10], "W": cols[11], "Resolution": cols[12], "epoch": epoch}


def vector_info(info: dict, live: np.ndarray, ok: np.ndarray, has_inc: np.ndarray) -> dict:
    """Gymnasium's vector info: arrays (copies) with a ``_key`` mask of the sub-environments that have the key.

    Args:
        info: The step's info of every sub-environment (arrays, and dicts of arrays).
        live: The sub-environments that stepped.
        ok: Those whose evaluation fit the budget (they reveal valid_acc, test_acc and metrics).
        has_inc: Those with an incumbent (they have incumbent and regret).

    Returns:
        The info with copies and masks.
    """
    out: dict[str, Any] = {}
    for k, v in info.items():
        mask = ok if k in _REVEALED else (live & has_inc) if k in _INCUMBENT else live
        if isinstance(v, dict):
            out[k] = {**{kk: np.array(vv, copy=True) for kk, vv in v.items()}, **{f"_{kk}": mask.copy() for kk in v}}
        else:
            out[k] = np.array(v, copy=True)
        out[f"_{k}"] = mask.copy()
    return out


def add_reset_info(info: dict, reset: dict, idx: np.ndarray, n: int) -> dict:
    """Gymnasium's vector envs on a step that autoresets sub-environments ``idx``: their entries (and masks) are
    their reset's info; a key only a reset has gets zeros elsewhere, masked off.

    Args:
        info: The step's vector info (:func:`vector_info`), changed in place.
        reset: The reset's info of the sub-environments ``idx`` (arrays over ``idx``).
        idx: The sub-environments reset on this step.
        n: All sub-environments.

    Returns:
        ``info``.
    """
    for k, v in reset.items():
        if k not in info:
            info[k] = np.zeros((n, *np.shape(v)[1:]), dtype=np.asarray(v).dtype)
            info[f"_{k}"] = np.zeros(n, dtype=bool)
        info[k][idx] = v
        info[f"_{k}"][idx] = True
    return info
