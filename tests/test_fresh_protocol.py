"""Planning a table's runs again under another protocol (``generation plan-protocol``), and the scoring code of
benchmarks/fresh_configs.py and benchmarks/protocol_bias.py, on tiny synthetic tables (offline, seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from generation.plan import Plan, PlanError, parse_fidelities, plan_from_table, read_protocol
from jahs_gym.protocol import Protocol
from jahs_gym.space import CONFIG_KEYS, Config
from tests.conftest import TINY_FIDELITIES, synthetic_table

PROTO = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=4)


@pytest.fixture(autouse=True)
def cheap_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Network sizes stand in for the measured cost features (building networks takes seconds; the selection,
    not the cost model, is under test here; test_generation covers the costing)."""
    import generation.costmodel

    monkeypatch.setattr(generation.costmodel, "cost_features",
                        lambda cfg, n, w, px, ch=1: (n * w * px * px / 1e4, n * w * px / 1e3))


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The synthetic table (4 epochs) with one unfinished and one diverged seed-0 run at N1-W4-R0.25."""
    df = synthetic_table(n_configs=120, epochs=4)
    runs = df[(df["fidelity_id"] == "N1-W4-R0.25") & (df["seed"] == 0)]["task_id"].unique()
    unfinished, diverged = runs[0], runs[1]
    df = df[~((df["task_id"] == unfinished) & (df["epoch"] == 4))].copy()
    df.loc[(df["task_id"] == diverged) & (df["epoch"] >= 3), "status"] = "diverged"
    df.attrs["bad"] = (unfinished, diverged)
    return df


def test_plan_from_table_is_deterministic_even_and_takes_complete_runs(table: pd.DataFrame) -> None:
    fids = parse_fidelities(TINY_FIDELITIES)
    long = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=8)
    a = plan_from_table(table, long, 14, seed=3, fidelities=fids, progress=False)
    b = plan_from_table(table, long, 14, seed=3, fidelities=fids, progress=False)
    assert a.tasks == b.tasks and len(a.tasks) == 14 and a.protocol == long
    counts = pd.Series([(t.N, t.W, t.Resolution) for t in a.tasks]).value_counts()
    # 5 runs per fidelity, 2 of them bad at N1-W4-R0.25: it gives all 3 complete ones, the others share the rest
    assert counts[(1, 4, 0.25)] == 3 and counts.drop((1, 4, 0.25)).between(3, 4).all()
    assert not {t.task_id for t in a.tasks} & set(table.attrs["bad"])
    seed0 = table[table["seed"] == 0].drop_duplicates("task_id").set_index("task_id")
    for t in a.tasks:  # the table's own seed-0 runs, same config and seed, new protocol
        assert t.seed == 0 and t.task_id in seed0.index
        row = seed0.loc[t.task_id]
        assert t.config.as_dict() == {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in CONFIG_KEYS}
    short = plan_from_table(table, PROTO, 14, seed=3, fidelities=fids, progress=False)
    assert [t.task_id for t in short.tasks] == [t.task_id for t in a.tasks]
    assert np.allclose([x.est_seconds / y.est_seconds for x, y in zip(a.tasks, short.tasks)], 2.0)
    other = plan_from_table(table, long, 14, seed=4, fidelities=fids, progress=False)
    assert {t.task_id for t in other.tasks} != {t.task_id for t in a.tasks}
    assert a.options["per_fidelity"]["N1-W4-R0.25"] == 3 and a.options["min_per_fidelity"] == 3
    with pytest.raises(PlanError, match="18 complete seed-0 runs"):
        plan_from_table(table, long, 19, fidelities=fids, progress=False)
    with pytest.raises(PlanError, match="positive"):
        plan_from_table(table, long, 0, fidelities=fids, progress=False)


def test_plan_protocol_cli_estimates_then_writes(table: pd.DataFrame, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from generation.__main__ import main

    table.to_parquet(tmp_path / "table.parquet")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps({"protocol": PROTO.as_dict()}))
    assert read_protocol(tmp_path / "bundle") == PROTO
    args = ["plan-protocol", str(tmp_path / "table.parquet"), "--protocol-of", str(tmp_path / "bundle"),
            "--max-epochs", "12", "--configs", "6", "--fidelities", TINY_FIDELITIES]
    assert main([*args, "--estimate"]) == 0
    assert "plan: 6 tasks" in capsys.readouterr().out and not (tmp_path / "run").exists()
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    plan = Plan.load(tmp_path / "run")
    assert len(plan.tasks) == 6 and plan.protocol == Protocol(**{**PROTO.as_dict(), "max_epochs": 12})
    assert main([*args[:3], str(tmp_path / "nowhere"), *args[4:], "--estimate"]) == 2
    assert "plan refused" in capsys.readouterr().err


def _fake_bench(df: pd.DataFrame, noise: float) -> SimpleNamespace:
    """A stand-in for jahs_gym.Benchmark(kind='surrogate'): predicts the rows' own values plus seeded noise."""
    metrics = ("valid_acc", "runtime")
    rng = np.random.default_rng(0)
    truth = df.set_index(["config_id", "N", "W", "Resolution", "epoch"])[list(metrics)]
    truth = truth[~truth.index.duplicated()]

    def query(q: pd.DataFrame) -> pd.DataFrame:
        ids = [Config.from_dict(r).config_id for r in q[list(CONFIG_KEYS)].to_dict(orient="records")]
        idx = pd.MultiIndex.from_arrays([ids, q["N"], q["W"], q["Resolution"], q["epoch"]])
        y = truth.loc[idx].to_numpy()
        return pd.DataFrame(y + rng.normal(0, noise, y.shape), columns=list(metrics), index=q.index)

    quality = {m: SimpleNamespace(quality={"r2": 0.9, "kendall_tau": 0.8}) for m in metrics}
    return SimpleNamespace(max_epochs=4, metrics=metrics, query=query,
                           bundle=SimpleNamespace(manifest=SimpleNamespace(metrics=quality)))


def test_fresh_configs_score_counts_and_per_fidelity() -> None:
    from benchmarks.fresh_configs import report, score

    df = synthetic_table(n_configs=60, epochs=4, seed=1)
    df = df[df["seed"] == 0]
    res = score(_fake_bench(df, 0.01), df, table_ids={df["config_id"].iloc[0], "not-there"})
    assert res["tasks"] == 60 and res["final_rows"] == 60 and res["in_bundle_table"] == [df["config_id"].iloc[0]]
    q = res["metrics"]["valid_acc"]
    assert q["all"]["n"] == len(df) and q["final"]["n"] == 60 and q["final"]["r2"] > 0.99
    assert q["final"]["kendall_tau"] > 0.95 and res["held_out"]["valid_acc"]["r2"] == 0.9
    fid = res["valid_acc_by_fidelity"]
    assert len(fid) == 27 and sum(d["configs"] for d in fid.values()) == 60
    assert res["valid_acc_by_level"]["N=1"]["configs"] == 24  # fidelities 0-8 of 27, configs i % 27
    text = report(res, planned=80)
    assert "scored 60 trained task(s) of 80 planned" in text and "fresh configs in the bundle's table: 1" in text
    # a bad surrogate scores worse
    assert score(_fake_bench(df, 20.0), df)["metrics"]["valid_acc"]["final"]["kendall_tau"] < 0.5


def test_fresh_plan_refuses_the_bundles_own_seed() -> None:
    from benchmarks.fresh_configs import bundle_plan_seed, make_fresh_plan

    own, _ = bundle_plan_seed("fashion_mnist")
    with pytest.raises(PlanError, match="bundle's plan seed"):
        make_fresh_plan("fashion_mnist", 40, own, 0.5, 1, None, progress=False)


def test_pair_tau_matches_brute_force() -> None:
    from benchmarks.protocol_bias import pair_tau

    rng = np.random.default_rng(0)
    a, b, g = rng.normal(size=30), rng.normal(size=30), rng.integers(0, 4, 30)
    s = n = 0
    for i in range(30):
        for j in range(i + 1, 30):
            if g[i] == g[j]:
                s += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
                n += 1
    tau, pairs = pair_tau(a, b, g)
    assert pairs == n and tau == pytest.approx(s / n)
    assert pair_tau(a, a)[0] == 1.0 and pair_tau(a, -a)[0] == -1.0


def test_protocol_bias_on_partial_results(table: pd.DataFrame) -> None:
    from benchmarks.protocol_bias import analyse, curves, markdown, seed_noise

    fids = parse_fidelities(TINY_FIDELITIES)
    long_proto = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=8)
    plan = plan_from_table(table, long_proto, 12, fidelities=fids, progress=False)
    # "8-epoch runs" of the planned tasks: epoch 4 keeps the table's order, epoch 8 reverses it; 3 not run, 1 diverged
    base = table[(table["seed"] == 0) & (table["epoch"] == 4)].set_index("task_id")["valid_acc"]
    ids = [t.task_id for t in plan.tasks]
    rows = []
    for k, tid in enumerate(ids[:9]):
        for e in range(1, 9):
            acc = base[tid] + e if e <= 4 else 200 - base[tid]
            rows.append({"task_id": tid, "epoch": e, "valid_acc": acc, "status": "diverged" if k == 8 else "ok"})
    long = pd.DataFrame(rows)
    c = curves(plan, table, long, short_epochs=4)
    assert (c["state"] == "done").sum() == 8 and (c["state"] == "pending").sum() == 3
    assert (c["state"] == "diverged").sum() == 1
    res = analyse(c, 4, 8, seed_noise(table, 4))
    assert res["done"] == 8 and res["planned"] == 12
    taus = list(res["tau"].values())
    assert taus[0]["tau"] == pytest.approx(-1.0) and taus[1]["tau"] == pytest.approx(1.0)
    assert taus[2]["tau"] == pytest.approx(-1.0) and taus[0]["n"] == 8
    assert res["noise"]["runs"] > 0 and sum(r["n"] for r in res["per_fidelity"]) == 8
    md = markdown(res, "synthetic", "data/runs/x_e8")
    assert md.startswith("## Protocol bias: 4 against 8 epochs") and "Done: 8 of 12" in md
    assert "| N1-W4-R0.25 |" in md
    empty = analyse(curves(plan, table, None, 4), 4, 8)
    assert empty["done"] == 0 and "winner" not in empty and "Done: 0 of 12" in markdown(empty, "s", "r")
