"""Fitting math (on a SYNTHETIC table), bundle integrity, and predictor agreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generation.fit import LINEAR_BASES, choose_linear, grouped_folds, kendall_tau, noise_ceiling, noise_model, quality
from jahs_gym.bundle import Bundle, BundleError, read_manifest, write_manifest
from jahs_gym.metrics import SchemaError, validate_table
from jahs_gym.space import FEATURES, encode_frame
from tests.conftest import SYNTHETIC_METRICS


def test_grouped_folds_keep_configs_together() -> None:
    groups = np.repeat(np.arange(30), 4)
    folds = grouped_folds(groups, 5, seed=1)
    assert sorted(np.concatenate(folds)) == list(range(120))
    for f in folds:
        others = np.concatenate([g for g in folds if g is not f])
        assert not set(groups[f]) & set(groups[others])


def test_kendall_tau_matches_definition() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=60), rng.normal(size=60)
    conc = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i in range(60) for j in range(i + 1, 60))
    assert kendall_tau(a, b) == pytest.approx(conc / (60 * 59 / 2))
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    q = quality(a, a + 0.01)
    assert q["r2"] > 0.99 and q["mae"] == pytest.approx(0.01)


@pytest.mark.parametrize("log", [False, True])
def test_noise_ceiling_recovers_the_seed_noise(log: bool) -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(1.0, 100.0, 400)
    sigma = 0.2 if log else 5.0
    rows = []
    for seed in (0, 1):
        e = rng.normal(0.0, sigma, len(truth))
        y = truth * np.exp(e) if log else truth + e
        rows.append(pd.DataFrame({"config_id": np.arange(400).astype(str), "fidelity_id": "N1-W4-R1", "epoch": 1,
                                  "seed": seed, "m": y}))
    c = noise_ceiling(pd.concat(rows), "m", "log" if log else "none")
    assert c["pairs"] == c["runs"] == 400 and c["sigma"] == pytest.approx(sigma, rel=0.15)
    if not log:  # additive noise: R2 ceiling = 1 - sigma^2 / var(y); labels averaging k seeds: noise sigma^2 / k
        var_y = np.var(np.concatenate([r["m"] for r in rows]))
        assert c["r2"] == pytest.approx(1 - sigma ** 2 / var_y, abs=0.02)
        c4 = noise_ceiling(pd.concat(rows), "m", "none", seeds=4)
        assert c4["r2"] == pytest.approx(1 - (sigma ** 2 / 4) / (var_y - sigma ** 2 + sigma ** 2 / 4), abs=0.01)
        assert c4["kendall_tau"] > c["kendall_tau"]
    assert 0.5 < c["kendall_tau"] < 1.0
    # one seed only: no estimate
    assert noise_ceiling(rows[0], "m", "log" if log else "none") == {"pairs": 0, "runs": 0}
    assert noise_model(rows[0], {"m": "none"}) == {}
    gap = [r.copy() for r in rows]
    gap[0].loc[:99, "m"] = np.nan  # a metric one seed lacks (a diverged loss) pairs nothing, never the other seed
    assert noise_ceiling(pd.concat(gap), "m", "log" if log else "none")["pairs"] == 300
    # the bundle's noise figure is the same estimate, in the same (fitted) space
    assert noise_model(pd.concat(rows), {"m": "log" if log else "none"})["m"] == pytest.approx(c["sigma"])


def test_choose_linear_takes_the_base_the_target_needs() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, (400, len(FEATURES)))
    groups = np.repeat(np.arange(100), 4)
    col = {f: x[:, FEATURES.index(f)] for f in LINEAR_BASES[-1]}
    work = 3.0 * col["log10_arch_MMACs"] + col["log10_arch_Mparams"]
    traffic = work + 2.0 * col["log10_arch_Melems"] - 0.5 * col["arch_layers"]
    for target, want in ((work, 0), (traffic, -1)):
        y = target + rng.normal(0.0, 0.01, len(x))
        # the smaller base suffices for `work`; against a base that lacks MACs it must win
        bases = (LINEAR_BASES[0], ("arch_layers",)) if want == 0 else LINEAR_BASES
        assert choose_linear(x, y, groups, seed=0, bases=bases, max_trees=40) == bases[want]


def test_parsimony_floor_keeps_few_trees_for_a_nearly_exact_target() -> None:
    from generation.fit import choose_params

    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, (600, len(FEATURES)))
    groups = np.repeat(np.arange(150), 4)
    # what a linear base leaves of a target whose std is 1: a small smooth rest, no noise (FLOPS-like)
    rest = 0.02 * np.sin(3 * x[:, 0]) + 0.01 * x[:, 1] ** 2
    _, n_best, rec = choose_params(x, rest, groups, trials=1, seed=0, max_trees=300)
    _, n_floor, rec_floor = choose_params(x, rest, groups, trials=1, seed=0, max_trees=300, rmse_floor=0.01)
    assert rec["rmse_floor"] == 0 and n_floor < n_best / 2
    assert rec_floor["rmse_ratio"] > 1.01  # the floor, not the tolerance, set it


def test_synthetic_fit_learns_the_known_function(synthetic_bundle: Path) -> None:
    m = read_manifest(synthetic_bundle).to_json()
    assert list(m["metrics"]) == SYNTHETIC_METRICS
    assert m["metrics"]["valid_acc"]["quality"]["r2"] > 0.8
    assert m["metrics"]["valid_acc"]["quality"]["kendall_tau"] > 0.6
    assert m["noise"]["valid_acc"] > 0  # repeated seeds carry noise
    assert m["fit"]["folds"] == 3
    for v in m["metrics"].values():  # the kept forest is within the tolerance of the best validation RMSE
        assert 1.0 <= v["parsimony"]["rmse_ratio"] <= 1.0 + v["parsimony"]["tolerance"] + 1e-9 \
            or v["parsimony"]["rmse_floor"] > 0  # or below the floor (checked on its own below)
        assert 1 <= v["parsimony"]["trees_at_best"] <= m["fit"]["max_trees"]


def test_table_schema_is_enforced() -> None:
    from tests.conftest import synthetic_table
    df = synthetic_table(10, 2)
    validate_table(df)
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['runtime'\]"):
        validate_table(df.drop(columns=["runtime"]))
    bad = df.copy()
    bad.loc[0, "valid_acc"] = 130.0
    with pytest.raises(SchemaError, match=r"valid_acc has 1 value\(s\) outside \[0, 100\]"):
        validate_table(bad)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


def test_one_changed_byte_in_a_model_is_refused(synthetic_bundle: Path, tmp_path: Path) -> None:
    b = _copy(synthetic_bundle, tmp_path)
    f = b / "models" / "valid_acc.ubj"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"models/valid_acc.ubj is corrupted \(sha256 mismatch\)"):
        Bundle(b)


def test_one_changed_byte_in_the_manifest_is_refused(synthetic_bundle: Path, tmp_path: Path) -> None:
    b = _copy(synthetic_bundle, tmp_path)
    text = (b / "manifest.json").read_text()
    m = json.loads(text)
    r2 = repr(m["metrics"]["valid_acc"]["quality"]["r2"])
    assert r2 in text
    (b / "manifest.json").write_text(text.replace(r2, r2[:-1] + ("1" if r2[-1] != "1" else "2"), 1))
    with pytest.raises(BundleError, match="was modified after it was written"):
        Bundle(b)


def test_a_bundle_of_another_encoding_names_the_refit(synthetic_bundle: Path, tmp_path: Path) -> None:
    b = _copy(synthetic_bundle, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["encoding"]["name"] = "jahs-onehot-v1"
    write_manifest(b, m)
    with pytest.raises(BundleError, match=r"encoding 'jahs-onehot-v1' differs .* refit it from its own table: "
                                          r"`python -m generation fit \S+table.parquet -o \S+-refit --ship-table`"):
        Bundle(b)
    (b / "table.parquet").unlink()
    write_manifest(b, m)
    with pytest.raises(BundleError, match=r"differs .* or refit the bundle with `python -m generation fit TABLE"):
        Bundle(b)


def test_missing_file_and_wrong_version_are_refused(synthetic_bundle: Path, tmp_path: Path) -> None:
    b = _copy(synthetic_bundle, tmp_path)
    (b / "models" / "runtime.ubj").unlink()
    with pytest.raises(BundleError, match="runtime.ubj listed in the manifest is missing"):
        Bundle(b)
    b2 = tmp_path / "v2"
    shutil.copytree(synthetic_bundle, b2)
    m = json.loads((b2 / "manifest.json").read_text())
    m["format_version"] = 99
    (b2 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        Bundle(b2)
    (b2 / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="is not valid JSON"):
        Bundle(b2)
    with pytest.raises(BundleError, match="manifest.json is missing"):
        Bundle(tmp_path)


def test_bundle_holds_no_pickle(synthetic_bundle: Path) -> None:
    for f in synthetic_bundle.rglob("*"):
        if f.is_file():
            assert f.suffix in {".json", ".ubj", ".parquet", ".md"}, f


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_fast_predictor_equals_xgboost(tiny_bundle: Path, tiny_table: Path, backend: str) -> None:
    from jahs_gym import predictor

    if backend == "c" and predictor._KERNEL is None:
        pytest.fail("the C kernel was not built by `pip install -e .` (setup.py)")
    b = Bundle(tiny_bundle)
    x = encode_frame(pd.read_parquet(tiny_table))
    naive = b.naive_predictor().predict(x)
    fast = b.predictor(backend=backend).predict(x)
    np.testing.assert_allclose(fast, naive, rtol=1e-4, atol=1e-9)
    one = b.predictor(backend=backend).predict_one(x[3])
    np.testing.assert_allclose(one, naive[3], rtol=1e-4, atol=1e-9)
    p = b.predictor(backend=backend)  # the env's hot path: metric units and the fitted space, one call
    rows = p.row_predictor()
    rows.x[:] = x[5]
    np.testing.assert_allclose(rows(), naive[5], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(rows.raw, p.predict_raw(x[5:6])[0], rtol=1e-6, atol=1e-9)
    lo, hi = np.array([b.output_bounds()[m] for m in b.metrics]).T
    assert (fast >= lo).all() and (fast <= hi).all()


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_row_predictor_scales_in_its_call_as_the_batch_scaler_does(tiny_bundle: Path, tiny_table: Path,
                                                                   backend: str) -> None:
    """The env's one-row call also writes the observation entries; the same bits as the batch Scaler (C or numpy)."""
    from jahs_gym.predictor import Scaler

    b = Bundle(tiny_bundle)
    x = encode_frame(pd.read_parquet(tiny_table))
    p = b.predictor(backend=backend)
    raw = p.predict_raw(x)
    cols, lo, span = [2, 0, 1], raw[:, [2, 0, 1]].min(axis=0) + 0.01, np.array([0.5, 2.0, 1e-3])
    sc = p.scaler(cols, lo, span)
    expected = np.clip((raw[:, cols] - lo) / span, 0.0, 1.0)
    assert np.array_equal(sc(raw), expected)
    assert np.array_equal(Scaler(cols, lo, span, "numpy")(raw), expected)
    assert (expected == 0.0).any() and (expected == 1.0).any() and ((expected > 0) & (expected < 1)).any()
    rows = p.row_predictor(sc)
    for i in range(len(x)):
        rows.xv[:] = memoryview(x[i])
        rows()
        assert np.array_equal(rows.raw, raw[i]) and np.array_equal(rows.scaled, expected[i])
    nan = np.array([[np.nan] * raw.shape[1]])
    assert np.isnan(sc(nan)).all()  # NaN stays NaN, not clipped into range
    with pytest.raises(ValueError, match="positive, finite span"):
        p.scaler(cols, lo, [1.0, 0.0, 1.0])
    # strided inputs are copied (the C kernel reads contiguous arrays), the caller's arrays are neither frozen nor
    # shared, and a column outside the outputs is refused, never read out of bounds
    w = np.zeros(6, dtype=np.int64)
    w[::2] = cols
    lo_mem = np.zeros(6)
    lo_mem[::2] = lo
    strided = Scaler(w[::2], lo_mem[::2], np.repeat(span, 2)[::2], backend)
    assert np.array_equal(strided(raw), expected)
    lo_mem[0] += 100.0
    assert np.array_equal(strided(raw), expected) and lo_mem.flags.writeable
    for bad in ([len(b.metrics)], [-1]):
        with pytest.raises(ValueError, match="allowed: 0.."):
            p.scaler(bad, [0.0], [1.0])
    with pytest.raises(ValueError, match="raw has shape"):
        Scaler([5], [0.0], [1.0], backend)(np.zeros((2, 4)))


def test_predict_row_takes_only_a_row_predictors_packed_bytes() -> None:
    from jahs_gym import predictor

    if predictor._KERNEL is None:
        pytest.fail("the C kernel was not built by `pip install -e .` (setup.py)")
    for bad in (b"", b"x" * 7, bytearray(184), None, 3):
        with pytest.raises(TypeError, match="packed bytes of a RowPredictor"):
            predictor._KERNEL.predict_row(bad)


def test_c_walk_matches_numpy_on_odd_and_even_rows_and_groups(tiny_bundle: Path, tiny_table: Path) -> None:
    """The C kernel walks row pairs over one group and a lone row over two groups; every parity agrees.

    The group counts (odd and even, 1 to 3 groups of 8) are made here from the tiny bundle's own trees, so they do not
    hang on how many trees the tiny fit happened to keep on this machine.
    """
    from jahs_gym import predictor
    from jahs_gym.predictor import ForestPredictor, read_booster_json
    from jahs_gym.space import N_FEATURES

    if predictor._KERNEL is None:
        pytest.fail("the C kernel was not built by `pip install -e .` (setup.py)")
    b = Bundle(tiny_bundle)
    x = encode_frame(pd.read_parquet(tiny_table))
    raws = [read_booster_json(f) for f in b.model_files().values()]
    trees = [t for r in raws for t in r["learner"]["gradient_booster"]["model"]["trees"]]  # every metric's trees
    m, raw = b.metrics[0], raws[0]
    tr, bounds = b.transforms(), b.output_bounds()
    groups = set()
    for k in (1, 7, 8, 9, 16, 17, 24):
        raw["learner"]["gradient_booster"]["model"]["trees"] = [trees[i % len(trees)] for i in range(k)]
        c, ref = (ForestPredictor({m: raw}, {m: tr[m]}, {m: bounds[m]}, N_FEATURES, backend)
                  for backend in ("c", "numpy"))
        assert c.n_trees == k
        groups.add(len(c.group_depth))
        for rows in (1, 2, 3, 33, 64):
            np.testing.assert_allclose(c.predict(x[:rows]), ref.predict(x[:rows]), rtol=1e-6, atol=1e-9)
        for i in (0, 5):
            np.testing.assert_allclose(c.predict_one(x[i]), ref.predict(x[i:i + 1])[0], rtol=1e-6, atol=1e-9)
    assert groups == {1, 2, 3}
    for subset in [(k,) for k in b.metrics] + [tuple(b.metrics)]:  # the real forests, every metric at once too
        c, ref = b.predictor(subset, backend="c"), b.predictor(subset, backend="numpy")
        np.testing.assert_allclose(c.predict(x[:33]), ref.predict(x[:33]), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(c.predict_one(x[0]), ref.predict(x[:1])[0], rtol=1e-6, atol=1e-9)


def test_predictor_is_loaded_once(tiny_bundle: Path) -> None:
    b = Bundle(tiny_bundle)
    assert b.predictor() is Bundle(tiny_bundle).predictor()
    with pytest.raises(KeyError, match=r"metric\(s\) \['top5'\] are not in"):
        b.predictor(("top5",))


def test_predictor_rejects_wrong_shape(tiny_bundle: Path) -> None:
    p = Bundle(tiny_bundle).predictor()
    with pytest.raises(ValueError, match=r"X has shape \(2, 3\); expected \(rows, 57\)"):
        p.predict(np.zeros((2, 3), dtype=np.float32))


def test_threaded_batches_equal_xgboost(tiny_bundle: Path) -> None:
    from jahs_gym.predictor import ForestPredictor, load_forest
    from jahs_gym.space import N_FEATURES, Fidelity, encode, sample_configs

    b = Bundle(tiny_bundle)
    n = ForestPredictor.MT_ROWS * 2 + 3
    rng = np.random.default_rng(0)
    fids = [Fidelity(int(rng.choice([1, 3, 5])), int(rng.choice([4, 8, 16])), float(rng.choice([0.25, 0.5, 1.0])),
                     int(rng.integers(1, 3))) for _ in range(n)]
    x = encode(sample_configs(n, 0), fids)
    naive = b.naive_predictor().predict(x)
    for threads in (1, 2, 3):
        fast = load_forest(b.model_files(), b.transforms(), b.output_bounds(), N_FEATURES, threads=threads,
                           linear=b.linear(b.metrics)).predict(x)
        np.testing.assert_allclose(fast, naive, rtol=1e-4, atol=1e-9)


def _drift(t: np.ndarray) -> np.ndarray:
    """A machine whose speed swings +-35% over a 3-hour cycle (log scale)."""
    return 0.3 * np.sin(2 * np.pi * (t - 1.7e9) / 10_800)


def test_speed_factors_recover_a_drift_without_the_tasks_own_config() -> None:
    from generation.fit import speed_factors

    rng = np.random.default_rng(0)
    n = 600
    ids = [f"t{i}" for i in range(n)]
    when = pd.Series(1.7e9 + np.sort(rng.uniform(0, 36_000, n)), index=ids)
    config = pd.Series([f"c{i // 2}" for i in range(n)], index=ids)  # seed twins trained back to back
    res = pd.Series(_drift(when.to_numpy()) + rng.normal(0, 0.05, n), index=ids)
    f = speed_factors(when, res, config, window_min=10)
    truth = _drift(when.to_numpy())
    assert np.corrcoef(f, truth)[0, 1] > 0.95
    assert abs(float(f.median())) < 1e-12  # centred: the median task keeps its label
    # neither a task's own residual nor its twin's (same config) enters its factor
    moved = res.copy()
    moved[["t100", "t101"]] += 5.0
    g = speed_factors(when, moved, config, window_min=10)
    assert g["t100"] - g.median() == pytest.approx(f["t100"] - f.median(), abs=1e-9)
    # an undated task gets no correction and corrects nobody
    when2 = when.copy()
    when2["t5"] = np.nan
    assert speed_factors(when2, res, config, window_min=10)["t5"] == 0.0


def test_task_times_fall_back_to_the_shard_commit() -> None:
    from generation.fit import task_times

    df = pd.DataFrame({"task_id": ["a", "a", "b", "b", "c"], "epoch_started": [5.0, 9.0, np.nan, np.nan, np.nan],
                       "shard_committed": [np.nan, np.nan, 100.0, 100.0, np.nan]})
    when, source = task_times(df)
    assert when["a"] == 5.0 and when["b"] == 100.0 and np.isnan(when["c"])
    assert list(source) == ["epoch_started", "shard_committed", ""]
    when, source = task_times(df.drop(columns=["shard_committed"]))
    assert np.isnan(when["b"]) and source["b"] == ""


def test_fit_divides_runtime_labels_by_the_machine_speed(tmp_path: Path) -> None:
    from generation.fit import fit_bundle, task_times
    from tests.conftest import synthetic_table

    df = synthetic_table(n_configs=240, epochs=3, seed=3)
    when, _ = task_times(df)
    slow = np.exp(_drift(df["task_id"].map(when).to_numpy()))
    df["cpu_runtime"] *= slow  # the same work, timed on a machine whose speed drifts
    df.to_parquet(tmp_path / "t.parquet")
    kw = {"folds": 3, "trials": 1, "metrics": ["cpu_runtime"], "progress": False, "max_trees": 60}
    m = fit_bundle(tmp_path / "t.parquet", tmp_path / "fixed", speed_window_min=20, **kw)["metrics"]["cpu_runtime"]
    raw = fit_bundle(tmp_path / "t.parquet", tmp_path / "raw", speed_window_min=None, **kw)["metrics"]["cpu_runtime"]
    assert "speed_correction" not in raw and "r2_raw_labels" not in raw["quality"]
    sc = m["speed_correction"]
    assert sc["dated"] == {"epoch_started": df["task_id"].nunique()} and sc["factor_log_std"] > 0.1
    # the corrected labels are the drift-free work: the surrogate leaves less than half the unexplained variance
    assert 1 - m["quality"]["r2_transformed"] < 0.5 * (1 - raw["quality"]["r2_transformed"])
    assert m["quality"]["r2_raw_labels"] < m["quality"]["r2"]


def test_fit_with_zero_tolerance_keeps_the_best_rmse_forest(tmp_path: Path) -> None:
    from generation.fit import fit_bundle
    from tests.conftest import synthetic_table

    synthetic_table(n_configs=60, epochs=2).to_parquet(tmp_path / "t.parquet")
    m = fit_bundle(tmp_path / "t.parquet", tmp_path / "b", folds=3, trials=2, metrics=["valid_acc"], progress=False,
                   max_trees=80, tolerance=0.0)["metrics"]["valid_acc"]
    assert m["parsimony"]["tolerance"] == 0.0 and m["parsimony"]["rmse_ratio"] == 1.0
    assert m["n_trees"] == m["parsimony"]["trees_at_best"]


def test_parse_tolerance_reads_a_number_or_metric_pairs() -> None:
    from generation.fit import PARSIMONY_TOLERANCE, parse_tolerance, tolerance_for

    assert parse_tolerance("0.02") == 0.02
    per = parse_tolerance("cpu_runtime=0, runtime=0")
    assert per == {"*": PARSIMONY_TOLERANCE, "cpu_runtime": 0.0, "runtime": 0.0}
    assert tolerance_for(per, "cpu_runtime") == 0.0 and tolerance_for(per, "valid_acc") == PARSIMONY_TOLERANCE
    assert tolerance_for(parse_tolerance("0.03,latency=0"), "valid_acc") == 0.03
    for bad, msg in (("cpu_runtme=0", r"unknown metric 'cpu_runtme'; allowed: \['train_loss'"),
                     ("-0.1", r"-0.1 must be a finite number >= 0"), ("fast", r"'fast' is not a number"),
                     ("", "is empty")):
        with pytest.raises(ValueError, match=msg):
            parse_tolerance(bad)


def test_fit_takes_a_tolerance_per_metric(tmp_path: Path) -> None:
    from generation.fit import fit_bundle
    from tests.conftest import synthetic_table

    synthetic_table(n_configs=60, epochs=2).to_parquet(tmp_path / "t.parquet")
    kw = {"folds": 3, "trials": 2, "progress": False, "max_trees": 80}
    with pytest.raises(ValueError, match=r"tolerance names metric\(s\) \['runtime'\] that are not fitted"):
        fit_bundle(tmp_path / "t.parquet", tmp_path / "x", metrics=["valid_acc"], tolerance={"runtime": 0.0}, **kw)
    m = fit_bundle(tmp_path / "t.parquet", tmp_path / "b", metrics=["valid_acc", "train_acc"],
                   tolerance={"*": 0.5, "valid_acc": 0.0}, **kw)["metrics"]
    assert m["valid_acc"]["parsimony"]["tolerance"] == 0.0 and m["valid_acc"]["parsimony"]["rmse_ratio"] == 1.0
    assert m["train_acc"]["parsimony"]["tolerance"] == 0.5
