"""An XGBoost model document, read and checked as untrusted input (a bundle's model file is user-supplied).

:func:`parse_booster_json` accepts one-target ``reg:squarederror`` gbtree models; :func:`layout_tree` checks
each tree is a proper tree (child indices in range, no node reached twice, so no cycle; no deeper than the
declared max_depth; numerical splits on known features; finite values) before laying it out for
:class:`jahs_gym.predictor.ForestPredictor`. Every refusal is one :class:`ModelError` naming the problem.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


class ModelError(ValueError):
    """A model document jahs-gym does not read: not a gbtree regression, or a tree that is not a proper tree."""


def parse_booster_json(raw: dict) -> tuple[float, list[dict]]:
    """(base score, trees) of an XGBoost JSON model (gbtree, reg:squarederror, one target).

    Args:
        raw: The parsed model document.

    Returns:
        The base score and the trees' dicts (KeyError or TypeError for a document missing the fields).

    Raises:
        ModelError: Another booster or objective, more than one target, or a base score that is not finite.
    """
    learner = raw["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise ModelError(f"only gbtree models are supported, not {gb.get('name')!r}")
    objective = learner.get("objective", {}).get("name", "reg:squarederror")  # absent in converted models
    if objective != "reg:squarederror":  # another objective maps the margin (a sigmoid, an exp): not a sum
        raise ModelError(f"objective {objective!r} is not supported; allowed: 'reg:squarederror'")
    param = learner["learner_model_param"]
    if str(param.get("num_target", "1")) != "1" or str(param.get("num_class", "0")) != "0":
        raise ModelError(f"a model of {param.get('num_target')} targets / {param.get('num_class')} classes; "
                         "allowed: one regression target")
    base = float(param["base_score"].strip("[]").split(",")[0])
    if not math.isfinite(base):
        raise ModelError(f"base_score {base} is not finite")
    return base, gb["model"]["trees"]


def layout_tree(t: dict, n_features: int, depth_limit: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Breadth-first re-layout of one XGBoost tree so that right child = left child + 1.

    Returns (thr, feat, left, value, depth) in the new order, ``left`` relative to the tree's start;
    leaves point to themselves with threshold +inf, so a walk of any length ends on them. A model file is
    untrusted input: a tree must be a tree (every child index in range, no node reached twice: no cycle),
    no deeper than ``depth_limit``, with numerical splits on the encoding's ``n_features`` features and finite
    thresholds and leaves; else ModelError naming the problem.

    Args:
        t: One tree of the model document.
        n_features: The encoding's feature count.
        depth_limit: The deepest tree allowed; None for any depth.

    Returns:
        (thr, feat, left, value, depth) as described above.

    Raises:
        ModelError: The tree is not a proper tree of this encoding, as described above.
    """
    try:
        lc, rc, si = (np.asarray(t[k], dtype=np.int64) for k in ("left_children", "right_children", "split_indices"))
        sc = np.asarray(t["split_conditions"], dtype=np.float64)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelError(f"its node arrays are missing or not numbers ({e})") from None
    n = len(lc) if lc.ndim == 1 else 0
    if n == 0 or not (rc.shape == sc.shape == si.shape == (n,)):
        raise ModelError(f"its node arrays have lengths {len(lc)}, {len(rc)}, {len(sc)}, {len(si)}; "
                         "allowed: one equal length >= 1")
    if int(t.get("tree_param", {}).get("size_leaf_vector", 1)) > 1:
        raise ModelError("it has vector leaves (a multi-output tree); allowed: scalar leaves")
    leaf = lc < 0
    inner_all = ~leaf
    if (leaf != (rc < 0)).any() or (lc[leaf] != -1).any():
        raise ModelError("a node has one child; allowed: two children, or -1 and -1 for a leaf")
    kids = np.concatenate([lc[inner_all], rc[inner_all]])
    if kids.size and (kids.min() < 1 or kids.max() >= n):
        raise ModelError(f"a child index is outside 1..{n - 1}")
    feats = si[inner_all]
    if feats.size and (feats.min() < 0 or feats.max() >= n_features):
        raise ModelError(f"it splits on feature {int(feats.min() if feats.min() < 0 else feats.max())}, but the "
                         f"encoding has {n_features} (0..{n_features - 1})")
    st = t.get("split_type")
    if st is not None and np.asarray(st, dtype=np.int64)[inner_all].any():
        raise ModelError("it has categorical splits; allowed: numerical splits")
    if not np.isfinite(sc).all():
        raise ModelError("a threshold or leaf value is not finite")
    limit = n if depth_limit is None else depth_limit
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    n_seen = 1
    levels = [np.array([0])]
    while True:
        inner = levels[-1][inner_all[levels[-1]]]
        if inner.size == 0:
            break
        if len(levels) > limit:
            raise ModelError(f"it is deeper than {limit} (the max_depth its manifest declares)")
        nxt = np.stack([lc[inner], rc[inner]], axis=1).ravel()
        seen[nxt] = True
        n_seen += len(nxt)
        if np.count_nonzero(seen) != n_seen:
            raise ModelError("a node is reached twice (a cycle or a shared node); allowed: a tree")
        levels.append(nxt)
    order = np.concatenate(levels)
    pos = np.empty(len(lc), dtype=np.int64)
    pos[order] = np.arange(len(order))
    lf = leaf[order]
    thr = np.where(lf, np.inf, sc[order]).astype(np.float32)
    feat = np.where(lf, 0, si[order])
    left = np.where(lf, np.arange(len(order)), pos[np.maximum(lc[order], 0)])
    value = np.where(lf, sc[order], 0.0).astype(np.float32)
    return thr, feat, left, value, len(levels) - 1


def booster(src: Path | str | bytes) -> Any:
    """An XGBoost Booster from a model file's path or its bytes (as read and hashed by the caller).

    Args:
        src: The model file's path, or its bytes.

    Returns:
        The Booster (needs xgboost).
    """
    from xgboost import Booster

    return Booster(model_file=bytearray(src) if isinstance(src, (bytes, bytearray)) else str(src))


def read_booster_json(src: Path | str | bytes) -> dict:
    """An XGBoost model (a file's path or its bytes; JSON or UBJ) as its JSON document.

    Args:
        src: The model file's path, or its bytes.

    Returns:
        The parsed JSON document.
    """
    return json.loads(bytes(booster(src).save_raw(raw_format="json")))
