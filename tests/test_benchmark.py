from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jahs_gym import Benchmark
from jahs_gym.space import SpaceError, sample_config


def test_surrogate_queries(tiny_data_env: str) -> None:
    bench = Benchmark(tiny_data_env)
    cfg = sample_config(0).as_dict()
    out = bench(cfg, nepochs=2, N=1, W=4, Resolution=0.25)
    assert list(out) == [2]
    assert 0 <= out[2]["valid_acc"] <= 100 and out[2]["runtime"] > 0
    traj = bench(cfg, nepochs=2, full_trajectory=True, N=1, W=4, Resolution=0.25)
    assert list(traj) == [1, 2]
    assert traj[2] == pytest.approx(out[2])
    curve = bench.learning_curve(cfg, N=1, W=4, Resolution=0.25)
    assert list(curve.index) == [1, 2]
    df = pd.DataFrame([{**cfg, "N": 1, "W": 4, "Resolution": 0.25, "epoch": 2}] * 3)
    res = bench.query(df)
    assert res.shape == (3, len(bench.metrics))
    assert res.iloc[0]["valid_acc"] == pytest.approx(out[2]["valid_acc"])


def test_bad_queries_are_refused(tiny_data_env: str) -> None:
    bench = Benchmark(tiny_data_env)
    cfg = sample_config(0).as_dict()
    with pytest.raises(SpaceError, match=r"nepochs=3 is out of range for task 'fmnist_tiny': its protocol trains 2 "
                                         r"epochs.*allowed: 1..2"):
        bench(cfg, nepochs=3)
    with pytest.raises(SpaceError, match="unknown key"):
        bench({**cfg, "Dropout": 0.1})
    df = pd.DataFrame([{**cfg, "N": 2, "W": 4, "Resolution": 0.25, "epoch": 1}])
    with pytest.raises(SpaceError, match=r"query row 0: Fidelity: N=2 is not allowed"):
        bench.query(df)
    with pytest.raises(SpaceError, match=r"missing column\(s\) \['epoch'\]"):
        bench.query(df.drop(columns=["epoch"]))
    with pytest.raises(ValueError, match="kind='tabular' is not allowed"):
        Benchmark(tiny_data_env, kind="tabular")


def test_metrics_subset_loads_only_those(tiny_data_env: str) -> None:
    bench = Benchmark(tiny_data_env, metrics=["valid_acc", "runtime"])
    out = bench(sample_config(1).as_dict(), nepochs=1, N=1, W=4, Resolution=0.25)
    assert set(out[1]) == {"valid_acc", "runtime"}
    assert bench.predictor.metrics == ("valid_acc", "runtime")


def test_unknown_task_lists_installed(tiny_data_env: str) -> None:
    with pytest.raises(KeyError, match=r"no bundle for task 'imagenet'; installed: .*fmnist_tiny.*generation"):
        Benchmark("imagenet")


def test_table_kind_answers_trained_rows(tiny_data_env: str, tiny_table: Path) -> None:
    bench = Benchmark(tiny_data_env, kind="table")
    df = pd.read_parquet(tiny_table)
    row = df[(df["seed"] == 0) & (df["epoch"] == 2)].iloc[0]
    cfg = {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in
           ["Op1", "Op2", "Op3", "Op4", "Op5", "Op6", "Activation", "TrivialAugment", "Optimizer", "LearningRate",
            "WeightDecay"]}
    out = bench(cfg, nepochs=2, N=int(row["N"]), W=int(row["W"]), Resolution=float(row["Resolution"]))
    assert out[2]["valid_acc"] == pytest.approx(row["valid_acc"])
    other = {(1, 4, 0.25), (1, 8, 0.25), (3, 4, 0.25), (1, 4, 0.5)} - {(row["N"], row["W"], row["Resolution"])}
    n, w, r = sorted(other)[0]
    with pytest.raises(KeyError, match=r"was not trained at .*; it was trained at: \['" + row["fidelity_id"]):
        bench(cfg, nepochs=2, N=n, W=w, Resolution=r)
    with pytest.raises(KeyError, match="is not in the fashion_mnist table|is not in the fmnist_tiny table"):
        bench(sample_config(12345).as_dict(), nepochs=1, N=1, W=4, Resolution=0.25)


def test_table_timings_are_measured_or_as_the_surrogate_fits_them(tiny_data_env: str, tiny_bundle: Path,
                                                                  tiny_table: Path, tmp_path: Path) -> None:
    import shutil

    from jahs_gym.bundle import read_manifest, write_manifest

    sf = pd.read_parquet(tiny_bundle / "speed_factors.parquet").set_index("task_id")
    assert set(sf.columns) == {"cpu_runtime", "runtime", "latency"} and (sf.to_numpy() > 0).all()
    assert not np.allclose(sf.to_numpy(), 1.0)  # the tiny run's own drift, not a placeholder
    df = pd.read_parquet(tiny_table)
    row = df[(df["seed"] == 0) & (df["epoch"] == 2)].iloc[0]
    cfg = {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in
           ["Op1", "Op2", "Op3", "Op4", "Op5", "Op6", "Activation", "TrivialAugment", "Optimizer", "LearningRate",
            "WeightDecay"]}
    fid = {"N": int(row["N"]), "W": int(row["W"]), "Resolution": float(row["Resolution"])}
    measured = Benchmark(tiny_data_env, kind="table")(cfg, nepochs=2, **fid)[2]
    corrected = Benchmark(tiny_data_env, kind="table", timings="corrected")(cfg, nepochs=2, **fid)[2]
    for m in sf.columns:
        assert measured[m] == pytest.approx(row[m])
        assert corrected[m] == pytest.approx(row[m] / sf.at[row["task_id"], m])
    assert corrected["valid_acc"] == measured["valid_acc"]
    with pytest.raises(ValueError, match="timings='measured' needs kind='table'"):
        Benchmark(tiny_data_env, timings="measured")
    with pytest.raises(ValueError, match=r"timings='wall' is not allowed; allowed: \['measured', 'corrected'\]"):
        Benchmark(tiny_data_env, kind="table", timings="wall")
    old = tmp_path / "old" / "fmnist_tiny"  # a bundle from before the factors were shipped
    shutil.copytree(tiny_bundle, old)
    (old / "speed_factors.parquet").unlink()
    man = read_manifest(old, verify_files=False).to_json()
    man["table"]["speed_factors"] = None
    write_manifest(old, man)
    from jahs_gym import bundle

    bundle.load_bundle.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAHS_GYM_DATA", str(old.parent))
        with pytest.raises(FileNotFoundError, match="ships no speed factors.*use timings='measured'"):
            Benchmark("fmnist_tiny", kind="table", timings="corrected")
        assert Benchmark("fmnist_tiny", kind="table")(cfg, nepochs=2, **fid)[2]["runtime"] == pytest.approx(
            row["runtime"])
        assert Benchmark("fmnist_tiny").timings == "corrected"
        for v in man["metrics"].values():  # as if fitted with --speed-window 0: timings as measured
            v.pop("speed_correction", None)
        write_manifest(old, man)
        bundle.load_bundle.cache_clear()
        assert Benchmark("fmnist_tiny").timings == "measured"
        assert Benchmark("fmnist_tiny", timings="measured").timings == "measured"
        with pytest.raises(ValueError, match="fitted without the speed correction.*use timings='measured'"):
            Benchmark("fmnist_tiny", timings="corrected")
    bundle.load_bundle.cache_clear()


@pytest.mark.parametrize("kind", ["surrogate", "table"])
def test_random_sample_as_jahs_bench_201(tiny_data_env: str, kind: str) -> None:
    bench = Benchmark("fmnist_tiny", kind=kind)
    config, results = bench.random_sample(random_state=3)
    assert {"N", "W", "Resolution", "Op1", "LearningRate"} <= set(config)
    assert list(results) == [bench.max_epochs] and set(results[bench.max_epochs]) == set(bench.metrics)
    assert results == bench(config)  # the sample answers like a query of its config
    assert bench.random_sample(random_state=3) == (config, results)  # seeded
    _, curve = bench.random_sample(random_state=4, full_trajectory=True)
    assert list(curve) == list(range(1, bench.max_epochs + 1))


def test_cli(tiny_data_env: str, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jahs_gym.cli import main

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "fmnist_tiny" in out and "valid_acc" in out
    best = pd.read_parquet(tiny_bundle / "table.parquet")["test_acc"].max()
    from jahs_gym.bundle import load_bundle

    ref = load_bundle(tiny_data_env).manifest.regret_reference
    assert f"regret reference (JAHS-v0): {ref:.2f}% test_acc, the surrogate's optimum" in out
    assert f"the table's best single run (information, not the reference): test_acc {best:.2f}%" in out
    assert main(["query", "--task", tiny_data_env, "--N", "1", "--W", "4", "--resolution", "0.25"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["result"]["2"]["valid_acc"] <= 100
    bad = '{"Op1": 9, "Op2": 0, "Op3": 0, "Op4": 0, "Op5": 0, "Op6": 0}'
    assert main(["query", "--task", tiny_data_env, "--config", bad]) == 2
    assert "Op1=9 is not allowed" in capsys.readouterr().err
