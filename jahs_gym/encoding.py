"""The numeric encoding of a (config, fidelity) row: one feature vector shared by the generation pipeline's
tables and by the surrogates, so both always agree on what a row means.

:data:`FEATURES` names the columns; :func:`encode_arrays` (batches), :func:`encode_one` (the environments' hot
path), :func:`encode_frame` (tables) and :func:`encode` (``Config``/``Fidelity`` lists) write them. Values are
assumed valid: callers validate with :mod:`jahs_gym.space` first. ``jahs_gym.space`` re-exports these names.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from jahs_gym.space import ACTIVATIONS, N_VALUES, OP_KEYS, OPS, RESOLUTIONS, W_VALUES, SpaceError

if TYPE_CHECKING:
    from jahs_gym.space import Config, Fidelity

ENCODING = "jahs-onehot-v4"
FEATURES: tuple[str, ...] = (
    *(f"{k}={op}" for k in OP_KEYS for op in OPS),
    *(f"n_{op}" for op in OPS),
    *(f"Activation={a}" for a in ACTIVATIONS),
    "TrivialAugment", "log10_LearningRate", "log10_WeightDecay", "N", "W", "Resolution", "epoch",
    # the cell's graph: does the input reach the output through non-'none' edges (else the whole network
    # outputs a constant: chance accuracy), and how many edges / convolutions lie on such paths
    "connected", "live_edges", "live_nor_conv_3x3", "live_nor_conv_1x1",
    # the cell's input -> output paths of non-'none' edges (there are 4 possible): how many, the most and the
    # fewest convolutions on one, and whether one has none (a parameter-free shortcut)
    "n_paths", "path_max_convs", "path_min_convs", "param_free_path",
    # the network's size, computed from the architecture (3 input channels, 32 x Resolution pixels):
    # multiply-accumulates and parameters of its executed convolutions, log10 of millions; output elements
    # of its executed layers (memory traffic), log10 of millions; and how many layers it executes (per-call
    # overhead, which dominates the runtime of small networks)
    "log10_arch_MMACs", "log10_arch_Mparams", "log10_arch_Melems", "arch_layers",
)
_NONE, _C3, _C1 = OPS.index("none"), OPS.index("nor_conv_3x3"), OPS.index("nor_conv_1x1")


def _size_key(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a cell adds to the network's size: (k2_run, k2_all, n_conv, units) per row of ``ops`` (rows, 6).

    ``k2_run``: summed kernel areas of the convs that run (their source node gets input), ``k2_all`` /
    ``n_conv``: of every conv edge (all hold parameters), ``units``: layers one cell runs (3 per running conv,
    1 per running skip / pool edge).
    """
    e = ops != _NONE
    r2 = e[:, 0]
    r3 = e[:, 1] | (r2 & e[:, 3])
    one = np.ones(len(ops), dtype=bool)
    run = e & np.column_stack([one, one, one, r2, r2, r3])
    area = np.where(ops == _C3, 9.0, np.where(ops == _C1, 1.0, 0.0))  # kernel area of each edge's conv
    k2_run = (area * run).sum(axis=1)  # executed convs cost MACs
    k2_all, n_conv = area.sum(axis=1), (area > 0).sum(axis=1)  # every conv edge holds parameters
    units = (np.where(area > 0, 3.0, 1.0) * run).sum(axis=1)  # a conv edge runs 3 layers, skip / pool 1
    return k2_run, k2_all, n_conv, units


def _arch_size(k2_run: Any, k2_all: Any, n_conv: Any, units: Any, n: Any, w: Any,
               resolution: Any) -> tuple[Any, Any, Any, Any]:
    """(MMACs, Mparams, Melems, layers) of what the network executes, from its cell's :func:`_size_key`.

    A task-agnostic proxy (3 input channels, 32 x Resolution pixels) of FLOPS, size and runtime, so the
    surrogates need not learn the architecture's arithmetic from data. Arrays or floats alike.
    """
    n, w = np.asarray(n, dtype=np.float64), np.asarray(w, dtype=np.float64)
    h = np.round(32.0 * np.asarray(resolution, dtype=np.float64))
    macs, params = _size(k2_run, k2_all, n_conv, n, w, h)
    elems, layers = _traffic(units, n, w, h)
    return macs / 1e6, params / 1e6, elems / 1e6, layers


def _size(k2_run: Any, k2_all: Any, n_conv: Any, n: Any, c: Any, h: Any) -> tuple[Any, Any]:
    """(MACs, params) of the network's convolutions and head; floats or numpy arrays alike.

    ``k2_run``: summed kernel areas of the executed cell convs, ``k2_all``/``n_conv``: of all cell convs
    (they hold parameters), ``c``: first-stage width, ``h``: input pixels (3 input channels).
    """
    macs = 27.0 * c * h * h  # stem conv + BN
    params = 27.0 * c + 2 * c
    for stage in range(3):
        if stage > 0:  # stride-2 ResNet block: two 3x3 conv + BN and a 1x1 shortcut
            h = -(-h // 2)
            block = c * 2 * c * 9 + (2 * c) ** 2 * 9 + c * 2 * c
            macs = macs + block * h * h
            params = params + block + 8 * c
            c = 2 * c
        macs = macs + n * k2_run * c * c * h * h
        params = params + n * (k2_all * c * c + n_conv * 2 * c)
    return macs + c * 10, params + 2 * c + c * 10 + 10


def _traffic(units: Any, n: Any, c: Any, h: Any) -> tuple[Any, Any]:
    """(output elements, layer calls) of one forward pass; floats or numpy arrays alike.

    ``units``: layers run by one cell (3 per executed conv edge, 1 per executed skip / pool edge).
    """
    elems = 2.0 * c * h * h  # stem conv + BN
    layers = 2.0
    for stage in range(3):
        if stage > 0:  # ResNet block: act, conv, BN twice; pool + 1x1 conv shortcut (pool and act see c_in)
            h2 = -(-h // 2)
            elems = elems + c * h * h + 6.0 * (2 * c) * h2 * h2 + c * h2 * h2
            layers = layers + 8.0
            c, h = 2 * c, h2
        elems = elems + n * units * c * h * h
        layers = layers + n * units
    return elems + 2.0 * c * h * h + 2.0 * c + 10.0, layers + 5.0  # head: BN, act, pool, flatten, linear


def _live_edges(e: np.ndarray) -> np.ndarray:
    """(rows, 6) bool: edge is not 'none' and lies on an input -> output path (edges in EDGES order)."""
    r2 = e[:, 0]
    r3 = e[:, 1] | (r2 & e[:, 3])
    b3 = e[:, 5]  # node 3 reaches the output
    b2 = e[:, 4] | (e[:, 3] & b3)  # node 2 reaches the output
    one = np.ones(len(e), dtype=bool)
    src = (one, one, one, r2, r2, r3)
    dst = (b2, b3, one, b3, one, one)
    return np.column_stack([e[:, k] & src[k] & dst[k] for k in range(6)])


# the 4 input -> output paths of the cell, as edge indices in EDGES order: 1-2-4, 1-2-3-4, 1-3-4, 1-4
_PATHS: tuple[tuple[int, ...], ...] = ((0, 4), (0, 3, 5), (1, 5), (2,))


def _path_features(ops: np.ndarray) -> np.ndarray:
    """(rows, 4): n_paths, path_max_convs, path_min_convs, param_free_path (0 where no path exists)."""
    e, conv = ops != _NONE, (ops == _C3) | (ops == _C1)
    ok = np.column_stack([e[:, list(p)].all(axis=1) for p in _PATHS])
    nconv = np.column_stack([conv[:, list(p)].sum(axis=1) for p in _PATHS])
    any_path = ok.any(axis=1)
    return np.column_stack([ok.sum(axis=1), np.where(ok, nconv, -1).max(axis=1).clip(0),
                            np.where(any_path, np.where(ok, nconv, 9).min(axis=1), 0),
                            (ok & (nconv == 0)).any(axis=1)])


N_FEATURES = len(FEATURES)

# Column offsets, computed once from FEATURES: reordering it moves them (never a silent mis-encoding), and a
# feature that no offset below names (added to FEATURES but not encoded) fails at import.
_COL: dict[str, int] = {name: i for i, name in enumerate(FEATURES)}


def _cols(names: Any) -> slice | np.ndarray:
    """The columns of ``names``: a slice where they are contiguous and in order (a view), else an index array."""
    idx = [_COL[k] for k in names]
    return slice(idx[0], idx[0] + len(idx)) if idx == list(range(idx[0], idx[0] + len(idx))) else np.array(idx)


_OP_COLS = np.array([[_COL[f"{k}={op}"] for op in OPS] for k in OP_KEYS], dtype=np.intp)  # (edge, op)
_COUNT_COLS = _cols(f"n_{op}" for op in OPS)
_ACT_COLS = np.array([_COL[f"Activation={a}"] for a in ACTIVATIONS], dtype=np.intp)
_TA, _LR, _WD, _N, _W, _RES, _EPOCH = (_COL[k] for k in (
    "TrivialAugment", "log10_LearningRate", "log10_WeightDecay", "N", "W", "Resolution", "epoch"))
_CONNECTED, _LIVE, _LIVE_C3, _LIVE_C1 = (_COL[k] for k in (
    "connected", "live_edges", "live_nor_conv_3x3", "live_nor_conv_1x1"))
_PATH_NAMES = ("n_paths", "path_max_convs", "path_min_convs", "param_free_path")
_PATH_COLS = _cols(_PATH_NAMES)
_MACS, _PARAMS, _ELEMS, _LAYERS = (_COL[k] for k in (
    "log10_arch_MMACs", "log10_arch_Mparams", "log10_arch_Melems", "arch_layers"))
_ARCH_COLS = np.array([_MACS, _PARAMS, _ELEMS, _LAYERS], dtype=np.intp)
# encode_one's positions, as Python ints
_OP_ONE = tuple(tuple(int(c) for c in row) for row in _OP_COLS)
_COUNT_ONE = tuple(_COL[f"n_{op}"] for op in OPS)
_ACT_ONE = tuple(int(c) for c in _ACT_COLS)
_GRAPH_ONE = (_CONNECTED, _LIVE, _LIVE_C3, _LIVE_C1, *(_COL[k] for k in _PATH_NAMES))
_written = sorted([*_OP_COLS.ravel().tolist(), *_COUNT_ONE, *_ACT_ONE, _TA, _LR, _WD, _N, _W, _RES, _EPOCH,
                   *_GRAPH_ONE, _MACS, _PARAMS, _ELEMS, _LAYERS])
if _written != list(range(N_FEATURES)):
    raise RuntimeError("jahs_gym.space: the encoders do not write every FEATURES column exactly once")
del _written


_CELL_BASE = len(OPS) ** np.arange(5, -1, -1)  # a cell's index: its op indices as digits base len(OPS), Op1 first


@functools.cache
def _cells() -> tuple[np.ndarray, np.ndarray]:
    """Every cell's features, computed once (5^6 = 15,625 cells, a few ms): a read-only float32
    (cells, :data:`N_FEATURES`) table holding the one-hot ops, op counts, cell-graph and path features (zeros
    elsewhere), and a read-only int64 (cells, 4) table of :func:`_size_key`. Row i is the cell whose op indices
    are i's digits base len(OPS) (:data:`_CELL_BASE`)."""
    ops = np.array(np.unravel_index(np.arange(len(OPS) ** 6), (len(OPS),) * 6), dtype=np.intp).T
    rows = len(ops)
    out = np.zeros((rows, N_FEATURES), dtype=np.float32)
    out[np.arange(rows)[:, None], _OP_COLS[np.arange(6), ops]] = 1.0
    out[:, _COUNT_COLS] = out[:, _OP_COLS].sum(axis=1)
    live = _live_edges(ops != _NONE)
    out[:, _CONNECTED] = live.any(axis=1)  # connected iff some edge lies on an input -> output path
    out[:, _LIVE] = live.sum(axis=1)
    out[:, _LIVE_C3] = (live & (ops == _C3)).sum(axis=1)
    out[:, _LIVE_C1] = (live & (ops == _C1)).sum(axis=1)
    out[:, _PATH_COLS] = _path_features(ops)
    size = np.column_stack(_size_key(ops)).astype(np.int64)
    out.flags.writeable = size.flags.writeable = False
    return out, size


@functools.cache
def _arch_grid() -> tuple[np.ndarray, np.ndarray]:
    """:func:`_arch_size`'s four features on the fidelity grid, computed once: each cell's size-key id (cells,)
    and a read-only float64 (size keys, len(N_VALUES), len(W_VALUES), len(RESOLUTIONS), 4) table of log10 MMACs,
    log10 Mparams, log10 Melems and layers (the values :func:`encode_arrays` writes)."""
    _, size = _cells()
    keys, key_of_cell = np.unique(size, axis=0, return_inverse=True)
    k = keys.astype(np.float64)[:, None, None, None, :]
    n, w, r = (np.asarray(v, dtype=np.float64) for v in np.meshgrid(N_VALUES, W_VALUES, RESOLUTIONS, indexing="ij"))
    macs, params, elems, layers = _arch_size(k[..., 0], k[..., 1], k[..., 2], k[..., 3], n, w, r)
    table = np.stack([np.log10(macs), np.log10(params), np.log10(elems), layers], axis=-1)
    table.flags.writeable = False
    return key_of_cell.reshape(-1), table


def _grid_index(v: Any, values: tuple, rows: int) -> np.ndarray | None:
    """Each row's index into the ascending ``values``, or None when some value is not one of them."""
    v = np.broadcast_to(np.asarray(v, dtype=np.float64), rows)
    grid = np.asarray(values, dtype=np.float64)
    i = (v > grid[0]).astype(np.intp)
    for g in grid[1:-1]:  # a handful of values: comparisons beat a search
        i += v > g
    return i if np.array_equal(grid[i], v) else None


def _cell_index(ops: np.ndarray) -> np.ndarray:
    """Row of :func:`_cells` of each (rows, 6) op-index row; SpaceError for an index outside 0..len(OPS)-1."""
    if ops.size and (ops.min() < 0 or ops.max() >= len(OPS)):
        bad = ops[(ops < 0) | (ops >= len(OPS))][0]
        raise SpaceError(f"op index {bad} is not allowed; allowed: 0..{len(OPS) - 1} ({list(OPS)})")
    return ops @ _CELL_BASE


def encode_arrays(ops: np.ndarray, activation: np.ndarray, trivial_augment: np.ndarray,
                  learning_rate: np.ndarray, weight_decay: np.ndarray, n: np.ndarray, w: np.ndarray,
                  resolution: np.ndarray, epoch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Encode rows given as arrays. Values are assumed valid (callers validate: :func:`~jahs_gym.space.frame_columns`).

    Args:
        ops: (rows, 6) op indices.
        activation: Activation indices into ``ACTIVATIONS``.
        trivial_augment: 0/1 (or bools).
        learning_rate: Learning rates (encoded as log10).
        weight_decay: Weight decays (encoded as log10).
        n: Cells per stage (an array, or one value for all rows).
        w: First-stage widths (likewise).
        resolution: Resolution fractions (likewise).
        epoch: Epochs.
        out: A float32 array of at least ``rows`` rows and :data:`N_FEATURES` columns to write the first
            ``rows`` rows of; None for a new one.

    Returns:
        ``out`` (or the new (rows, :data:`N_FEATURES`) float32 array).

    Raises:
        SpaceError: An op or activation index outside the ops or activations.
    """
    ops = np.asarray(ops, dtype=np.intp).reshape(-1, 6)
    rows = ops.shape[0]
    cells, size = _cells()
    idx = _cell_index(ops)
    if out is None:
        out = cells[idx]  # the cell's columns; zeros elsewhere
    else:
        out[:rows] = cells[idx]
    act = np.asarray(activation, dtype=np.intp)
    if act.size and (act.min() < 0 or act.max() >= len(ACTIVATIONS)):
        bad = act[(act < 0) | (act >= len(ACTIVATIONS))][0]
        raise SpaceError(f"activation index {bad} is not allowed; allowed: 0..{len(ACTIVATIONS) - 1} "
                         f"({list(ACTIVATIONS)})")
    out[np.arange(rows), _ACT_COLS[act]] = 1.0
    out[:rows, _TA] = trivial_augment
    out[:rows, _LR] = np.log10(learning_rate)
    out[:rows, _WD] = np.log10(weight_decay)
    out[:rows, _N] = n
    out[:rows, _W] = w
    out[:rows, _RES] = resolution
    out[:rows, _EPOCH] = epoch
    grid = [_grid_index(v, values, rows) for v, values in ((n, N_VALUES), (w, W_VALUES), (resolution, RESOLUTIONS))]
    if all(g is not None for g in grid):  # the fidelity space's values: looked up
        key_of_cell, table = _arch_grid()
        out[:rows, _ARCH_COLS] = table[key_of_cell[idx], grid[0], grid[1], grid[2]]
        return out
    k = size[idx].T.astype(np.float64)
    macs, params, elems, layers = _arch_size(*k, np.broadcast_to(n, rows), np.broadcast_to(w, rows),
                                             np.broadcast_to(resolution, rows))
    out[:rows, _MACS] = np.log10(macs)
    out[:rows, _PARAMS] = np.log10(params)
    out[:rows, _ELEMS] = np.log10(elems)
    out[:rows, _LAYERS] = layers
    return out


def encode_one(out: np.ndarray | memoryview, ops: Any, activation: int, trivial_augment: bool,
               learning_rate: float, weight_decay: float, n: int, w: int, resolution: float,
               epoch: int) -> np.ndarray | memoryview:
    """Encode one row into the float32 vector ``out`` (length :data:`N_FEATURES`) without numpy overhead.

    Same values as :func:`encode_arrays`; the environments' hot path: the cell's row of :func:`_cells` is copied
    in and a dozen items are set through a memoryview (pass ``memoryview(out)`` to save making one). The cell's
    and the network's features are memoised (bounded caches).

    Args:
        out: The float32 vector to write, or a memoryview of it.
        ops: The six op indices.
        activation: Activation index.
        trivial_augment: TrivialAugment.
        learning_rate: LearningRate.
        weight_decay: WeightDecay.
        n: Cells per stage.
        w: First-stage width.
        resolution: Resolution fraction.
        epoch: Epoch.

    Returns:
        ``out``.

    Raises:
        SpaceError: ``ops`` are not six integer op indices of the ops.
        TypeError: ``out`` is not a float32 vector.
    """
    cell, size_key = _cell_one(tuple(ops))
    v = out if type(out) is memoryview else memoryview(out)
    if v.format != "f":
        raise TypeError(f"encode_one writes a float32 vector; got format {v.format!r}")
    v[:] = cell
    v[_ACT_ONE[activation]] = 1.0
    v[_TA] = 1.0 if trivial_augment else 0.0
    v[_LR] = math.log10(learning_rate)
    v[_WD] = math.log10(weight_decay)
    v[_N] = n
    v[_W] = w
    v[_RES] = resolution
    v[_EPOCH] = epoch
    v[_MACS], v[_PARAMS], v[_ELEMS], v[_LAYERS] = _arch_one(*size_key, n, w, resolution)
    return out


@functools.lru_cache(maxsize=1 << 14)
def _cell_one(ops: tuple[int, ...]) -> tuple[memoryview, tuple[int, int, int, int]]:
    """(the cell's read-only row of :func:`_cells`, its size key as ints)."""
    cells, size = _cells()
    a = np.asarray(ops)
    if a.shape != (6,) or a.dtype.kind not in "iu":
        raise SpaceError(f"ops {list(ops)!r}: allowed: six integer op indices in 0..{len(OPS) - 1}")
    i = int(_cell_index(a.astype(np.intp).reshape(1, 6))[0])
    return memoryview(cells[i]), tuple(size[i].tolist())


@functools.lru_cache(maxsize=1 << 16)
def _arch_one(k2_run: int, k2_all: int, n_conv: int, units: int, n: int, w: int,
              resolution: float) -> tuple[float, float, float, float]:
    """log10 MMACs, log10 Mparams, log10 Melems and layer calls of one network."""
    h = float(round(32.0 * resolution))
    macs, params = _size(k2_run, k2_all, n_conv, n, float(w), h)
    elems, layers = _traffic(units, n, float(w), h)
    return math.log10(macs / 1e6), math.log10(params / 1e6), math.log10(elems / 1e6), layers


def encode_frame(df: Any) -> np.ndarray:
    """Encode a DataFrame with the config columns plus N, W, Resolution, epoch.

    Args:
        df: The rows; ops as indices or names, Activation as names (values otherwise assumed valid).

    Returns:
        float32 (rows, :data:`N_FEATURES`) (SpaceError for an op or activation name that is not one).
    """
    ops = np.stack([_op_codes(df[k]) for k in OP_KEYS], axis=1)
    act = _codes(df["Activation"], ACTIVATIONS, "Activation")
    return encode_arrays(ops, act, df["TrivialAugment"].to_numpy(dtype=np.float32),
                         df["LearningRate"].to_numpy(dtype=np.float64), df["WeightDecay"].to_numpy(dtype=np.float64),
                         df["N"].to_numpy(), df["W"].to_numpy(), df["Resolution"].to_numpy(), df["epoch"].to_numpy())


def encode(configs: list[Config], fidelities: list[Fidelity]) -> np.ndarray:
    """Encode matching lists of :class:`Config` and :class:`Fidelity`.

    Args:
        configs: The configs.
        fidelities: One fidelity per config.

    Returns:
        float32 (rows, :data:`N_FEATURES`).

    Raises:
        ValueError: The lists differ in length.
    """
    if len(configs) != len(fidelities):
        raise ValueError(f"encode: {len(configs)} configs but {len(fidelities)} fidelities")
    return encode_arrays(
        np.array([[getattr(c, k) for k in OP_KEYS] for c in configs], dtype=np.intp).reshape(-1, 6),
        np.array([ACTIVATIONS.index(c.Activation) for c in configs], dtype=np.intp),
        np.array([c.TrivialAugment for c in configs], dtype=np.float32),
        np.array([c.LearningRate for c in configs]), np.array([c.WeightDecay for c in configs]),
        np.array([f.N for f in fidelities]), np.array([f.W for f in fidelities]),
        np.array([f.Resolution for f in fidelities]), np.array([f.epoch for f in fidelities]))


def _op_codes(col: Any) -> np.ndarray:
    values = col.to_numpy()
    if values.dtype.kind in "iuf":
        return values.astype(np.intp)
    return _codes(col, OPS, col.name)


def _codes(col: Any, allowed: tuple[str, ...], name: str) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(allowed)}
    try:
        return np.array([lookup[v] for v in col.to_numpy()], dtype=np.intp)
    except KeyError as e:
        raise SpaceError(f"column {name}: value {e.args[0]!r} is not allowed; allowed: {list(allowed)}") from None
