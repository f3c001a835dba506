from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jahs_gym.space import (
    ACTIVATIONS,
    FEATURES,
    OP_KEYS,
    OPS,
    Config,
    Fidelity,
    SpaceError,
    encode,
    encode_arrays,
    encode_frame,
    encode_one,
    sample_config,
    sample_configs,
    split_dict,
)

BASE = {"Op1": 2, "Op2": 0, "Op3": 3, "Op4": 4, "Op5": 1, "Op6": 2}


@pytest.mark.parametrize(("change", "needle"), [
    ({"Op7": 1}, "unknown key(s) ['Op7']"),
    ({"Op1": 5}, "Op1=5 is not allowed; allowed: indices 0..4"),
    ({"Op2": "conv5x5"}, "Op2='conv5x5' is not an op"),
    ({"Activation": "GELU"}, "Activation='GELU' is not allowed; allowed: ['ReLU', 'Hardswish', 'Mish']"),
    ({"Optimizer": "Adam"}, "Optimizer='Adam' is not allowed; allowed: ['SGD']"),
    ({"LearningRate": 2.0}, "LearningRate=2.0 is out of range; allowed: [0.001, 1]"),
    ({"WeightDecay": 1e-7}, "WeightDecay=1e-07 is out of range"),
    ({"LearningRate": float("nan")}, "LearningRate is NaN"),
    ({"LearningRate": "0.1"}, "LearningRate='0.1' must be a real number"),
    ({"TrivialAugment": "yes"}, "TrivialAugment='yes' is not allowed; allowed: [False, True]"),
    ({"TrivialAugment": 1}, "TrivialAugment=1 is not allowed"),
    ({"Op3": True}, "Op3=True is not allowed"),
])
def test_bad_config_values_get_one_clear_error(change: dict, needle: str) -> None:
    with pytest.raises(SpaceError) as e:
        Config.from_dict({**BASE, **change})
    assert needle in str(e.value)


def test_missing_op_key_is_named() -> None:
    d = dict(BASE)
    del d["Op4"]
    with pytest.raises(SpaceError, match=r"missing key\(s\) \['Op4'\]"):
        Config.from_dict(d)


@pytest.mark.parametrize(("kw", "needle"), [
    ({"N": 2}, "N=2 is not allowed; allowed: [1, 3, 5]"),
    ({"W": 32}, "W=32 is not allowed; allowed: [4, 8, 16]"),
    ({"Resolution": 0.75}, "Resolution=0.75 is not allowed; allowed: [0.25, 0.5, 1.0]"),
    ({"Resolution": float("nan")}, "Resolution is NaN"),
    ({"epoch": 0}, "epoch=0 is not allowed; allowed: an integer >= 1"),
    ({"epoch": 1.5}, "epoch=1.5 is not allowed"),
])
def test_bad_fidelity_values(kw: dict, needle: str) -> None:
    with pytest.raises(SpaceError) as e:
        Fidelity(**kw)
    assert needle in str(e.value)


def test_epoch_beyond_protocol() -> None:
    with pytest.raises(SpaceError, match=r"epoch=12 is out of range; allowed: 1..10"):
        Fidelity(epoch=12).check_epoch(10)


def test_roundtrip_names_and_ids() -> None:
    c = Config.from_dict({**BASE, "Op1": "nor_conv_3x3", "LearningRate": np.float32(0.25)})
    assert c.Op1 == OPS.index("nor_conv_3x3")
    assert Config.from_dict(c.as_dict()) == c
    assert c.config_id == Config.from_dict(c.as_dict()).config_id
    assert len(c.config_id) == 12
    assert c.config_id != Config.from_dict({**c.as_dict(), "WeightDecay": 1e-3}).config_id


def test_split_dict_defaults_to_full_fidelity() -> None:
    cfg, fid = split_dict(BASE)
    assert (fid.N, fid.W, fid.Resolution, fid.epoch) == (5, 16, 1.0, 1)
    with pytest.raises(SpaceError, match="unknown key"):
        split_dict({**BASE, "nepochs": 3})


def test_sampling_is_seeded_and_valid() -> None:
    assert sample_config(3) == sample_config(3)
    assert sample_config(3) != sample_config(4)
    cs = sample_configs(500, 0)
    lrs = np.array([c.LearningRate for c in cs])
    assert lrs.min() >= 1e-3 and lrs.max() <= 1.0
    # log-uniform: about half below the geometric middle
    assert 0.4 < np.mean(lrs < math.sqrt(1e-3)) < 0.6


def test_encodings_agree() -> None:
    cs = sample_configs(300, 1)
    fids = [Fidelity(3, 8, 0.5, e % 5 + 1) for e in range(300)]
    x = encode(cs, fids)
    df = pd.DataFrame([{**c.as_dict(), **f.as_dict()} for c, f in zip(cs, fids)])
    np.testing.assert_array_equal(x, encode_frame(df))
    assert x.shape == (300, len(FEATURES)) and x.dtype == np.float32
    assert (x[:, :30].reshape(300, 6, 5).sum(axis=2) == 1).all()
    buf = np.zeros(len(FEATURES), dtype=np.float32)
    for c, f, row in [*zip(cs, fids, x), *zip(cs, fids, x)]:  # the second pass answers from the memo
        encode_one(buf, [getattr(c, k) for k in OP_KEYS], ACTIVATIONS.index(c.Activation), c.TrivialAugment,
                   c.LearningRate, c.WeightDecay, f.N, f.W, f.Resolution, f.epoch)
        np.testing.assert_allclose(buf, row, rtol=1e-6)
    assert 0 < x[:, FEATURES.index("connected")].mean() < 1


def test_encode_one_and_arrays_agree_and_columns_land_where_features_say() -> None:
    rng = np.random.default_rng(7)
    rows = 400
    ops = rng.integers(0, len(OPS), size=(rows, 6))
    act = rng.integers(0, len(ACTIVATIONS), size=rows)
    ta = rng.integers(0, 2, size=rows)
    lr = np.exp(rng.uniform(np.log(1e-3), 0.0, size=rows))
    wd = np.exp(rng.uniform(np.log(1e-5), np.log(1e-2), size=rows))
    n, w = rng.choice([1, 3, 5], size=rows), rng.choice([4, 8, 16], size=rows)
    res, epoch = rng.choice([0.25, 0.5, 1.0], size=rows), rng.integers(1, 201, size=rows)
    x = encode_arrays(ops, act, ta.astype(np.float32), lr, wd, n, w, res, epoch)
    assert x.shape == (rows, len(FEATURES))
    buf = np.zeros(len(FEATURES), dtype=np.float32)
    col = {name: i for i, name in enumerate(FEATURES)}
    view = memoryview(buf)
    for i in range(rows):  # the same bits, into the array or through a memoryview of it (the env's hot path)
        args = (ops[i].tolist(), int(act[i]), bool(ta[i]), float(lr[i]), float(wd[i]), int(n[i]), int(w[i]),
                float(res[i]), int(epoch[i]))
        encode_one(buf, *args)
        assert np.array_equal(buf.view(np.uint32), x[i].view(np.uint32)), f"row {i}"
        buf[:] = np.nan
        encode_one(view, *args)
        assert np.array_equal(buf.view(np.uint32), x[i].view(np.uint32)), f"row {i} (memoryview)"
    out = np.full((rows + 2, len(FEATURES)), np.nan, dtype=np.float32)  # into the first rows of a given array
    encode_arrays(ops, act, ta.astype(np.float32), lr, wd, n, w, res, epoch, out=out)
    assert np.array_equal(out[:rows], x) and np.isnan(out[rows:]).all()
    with pytest.raises(SpaceError, match="activation index -1"):
        encode_arrays(ops, np.where(np.arange(rows) == 5, -1, act), ta, lr, wd, n, w, res, epoch)
    with pytest.raises(SpaceError, match="six integer op indices"):
        encode_one(buf, [1.5, 0, 0, 0, 0, 0], 0, True, 0.01, 1e-4, 5, 16, 1.0, 3)
    with pytest.raises(TypeError, match="float32 vector"):
        encode_one(np.zeros(len(FEATURES)), [1, 0, 0, 0, 0, 0], 0, True, 0.01, 1e-4, 5, 16, 1.0, 3)
    for bad in (-1, len(OPS)):  # an op index outside the ops is refused, never read as another cell
        wrong = ops.copy()
        wrong[3, 4] = bad
        with pytest.raises(SpaceError, match=f"op index {bad} is not allowed"):
            encode_arrays(wrong, act, ta, lr, wd, n, w, res, epoch)
    for name, want in [("epoch", epoch), ("N", n), ("W", w), ("Resolution", res), ("TrivialAugment", ta),
                       ("log10_LearningRate", np.log10(lr)), ("log10_WeightDecay", np.log10(wd))]:
        np.testing.assert_allclose(x[:, col[name]], want.astype(np.float32), rtol=1e-6, err_msg=name)
    for e, k in enumerate(OP_KEYS):
        for o, op in enumerate(OPS):
            assert (x[:, col[f"{k}={op}"]] == (ops[:, e] == o)).all(), f"{k}={op}"
    for o, op in enumerate(OPS):
        assert (x[:, col[f"n_{op}"]] == (ops == o).sum(axis=1)).all(), f"n_{op}"
    for a, name in enumerate(ACTIVATIONS):
        assert (x[:, col[f"Activation={name}"]] == (act == a)).all(), name
    # one row by hand: Op3=avg_pool_3x3, Mish, epoch 17 at N=5, W=16, Resolution 0.25
    encode_one(buf, [0, 1, OPS.index("avg_pool_3x3"), 2, 3, 0], ACTIVATIONS.index("Mish"), True, 0.01, 1e-4,
               5, 16, 0.25, 17)
    assert buf[col["Op3=avg_pool_3x3"]] == 1.0 and buf[col["Op3=skip_connect"]] == 0.0
    assert buf[col["Activation=Mish"]] == 1.0 and buf[col["Activation=ReLU"]] == 0.0
    assert (buf[col["epoch"]], buf[col["N"]], buf[col["W"]], buf[col["Resolution"]]) == (17, 5, 16, 0.25)
    assert buf[col["log10_LearningRate"]] == np.float32(-2.0) and buf[col["log10_WeightDecay"]] == np.float32(-4.0)
    assert buf[col["TrivialAugment"]] == 1.0


@pytest.mark.parametrize(("ops", "connected", "live", "conv3", "paths"), [
    ((1, 1, 1, 1, 1, 1), 0, 0, 0, (0, 0, 0, 0)),  # all none
    ((2, 2, 1, 2, 1, 1), 0, 0, 0, (0, 0, 0, 0)),  # convs everywhere, but nothing reaches node 4
    ((1, 1, 0, 2, 2, 2), 1, 1, 0, (1, 0, 0, 1)),  # only the direct skip 1 -> 4 is live
    ((2, 1, 1, 2, 1, 2), 1, 3, 3, (1, 3, 3, 0)),  # 1 -> 2 -> 3 -> 4 through three convs
    ((2, 2, 2, 2, 2, 2), 1, 6, 6, (4, 3, 1, 0)),
    ((3, 4, 0, 2, 2, 3), 1, 6, 2, (4, 3, 0, 1)),  # 1x1 conv, pool, skip: paths of 2, 3, 1 and 0 convs
])
def test_cell_graph_features(ops: tuple, connected: int, live: int, conv3: int, paths: tuple) -> None:
    x = encode([Config(*ops)], [Fidelity(3, 8, 1.0, 1)])[0]
    assert x[FEATURES.index("connected")] == connected
    assert x[FEATURES.index("live_edges")] == live
    assert x[FEATURES.index("live_nor_conv_3x3")] == conv3
    assert tuple(x[[FEATURES.index(f) for f in ("n_paths", "path_max_convs", "path_min_convs",
                                                "param_free_path")]]) == paths
    buf = np.zeros(len(FEATURES), dtype=np.float32)
    encode_one(buf, ops, 0, False, 0.1, 5e-4, 3, 8, 1.0, 1)  # Config defaults
    np.testing.assert_allclose(buf, x, rtol=1e-6)


@given(st.fixed_dictionaries({
    **{f"Op{i}": st.integers(0, 4) for i in range(1, 7)},
    "Activation": st.sampled_from(["ReLU", "Hardswish", "Mish"]),
    "TrivialAugment": st.booleans(),
    "LearningRate": st.floats(1e-3, 1.0),
    "WeightDecay": st.floats(1e-5, 1e-2),
}))
def test_every_valid_dict_round_trips(d: dict) -> None:
    c = Config.from_dict(d)
    assert Config.from_dict(c.as_dict()) == c


def test_configspace_export() -> None:
    pytest.importorskip("ConfigSpace")
    from jahs_gym.configspace import search_space

    cs = search_space(seed=0)
    sample = dict(cs.sample_configuration())
    Config.from_dict(sample)  # every sample is a valid Config
    assert set(sample) == set(Config.__dataclass_fields__)
