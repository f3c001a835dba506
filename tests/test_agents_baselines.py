"""The canonical NAS/HPO baselines: REINFORCE, DEHB, SMAC3 (black-box and multi-fidelity), Optuna TPE, on the
env (the harness) and on a Benchmark (agents/objective.py and each library's own loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.bench import NEEDS, main
from agents.common import FULL
from agents.objective import BenchmarkObjective, on_benchmark
from agents.reinforce import EMA, Adam, Args, Reinforce
from jahs_gym.space import Config, sample_config

NEW = ("reinforce", "optuna_tpe", "dehb", "smac", "smac_mf")


def _need(agent: str) -> None:
    if agent in NEEDS:  # skipped only where the agent's extra is not installed
        pytest.importorskip(NEEDS[agent][0])


def _agent(name: str):  # noqa: ANN202
    from agents.bench import make_agent

    return make_agent(name)


def test_adam_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = rng.standard_normal(5)
    theirs = torch.tensor(ours.copy(), requires_grad=True)
    opt, topt = Adam(ours.shape, 0.01), torch.optim.Adam([theirs], lr=0.01)
    for _ in range(20):
        g = rng.standard_normal(5)
        opt.step(ours, g)
        theirs.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_ema_is_nas_bench_201s() -> None:
    ema = EMA(0.9)
    ema.update(10.0)
    assert ema.value() == pytest.approx(10.0)  # bias-corrected: the first value, not 1.0
    ema.update(20.0)
    assert ema.value() == pytest.approx((0.9 * 0.1 * 10 + 0.1 * 20) / (0.9 * 0.1 + 0.1))


class _Synthetic:
    """Reward 100 when Op1 is nor_conv_3x3 and Activation is Mish, else 0; stops after ``n`` evaluations."""

    max_epochs = 10

    def __init__(self, n: int) -> None:
        self.n, self.asked = n, []

    def __call__(self, cfg: Config, fid: tuple = FULL, epochs: int | None = None) -> float | None:
        if len(self.asked) >= self.n:
            return None
        self.asked.append((cfg, fid, epochs))
        return 50.0 * (cfg.Op1 == 2) + 50.0 * (cfg.Activation == "Mish")


def test_reinforce_learns_the_rewarded_choices() -> None:
    obj = _Synthetic(400)
    Reinforce(Args(learning_rate=0.05)).search(obj, np.random.default_rng(0))
    def share(part: list, key: str, value: object) -> float:
        return float(np.mean([getattr(c, key) == value for c, _, _ in part]))

    late, first = obj.asked[-100:], obj.asked[:25]
    for key, value in (("Op1", 2), ("Activation", "Mish")):
        assert share(late, key, value) > 0.8 and share(first, key, value) < share(late, key, value) - 0.3
    assert all(f == FULL and e is None for _, f, e in obj.asked)  # full fidelity, the task's max epochs
    lrs = {c.LearningRate for c, _, _ in obj.asked}
    assert lrs <= set(np.geomspace(1e-3, 1.0, 8).tolist())  # the discretised hyperparameters


@pytest.mark.parametrize("agent", NEW)
def test_every_baseline_runs_on_a_benchmark(agent: str) -> None:
    _need(agent)
    import jahs_gym

    bench = jahs_gym.Benchmark("fashion_mnist")
    budget = 3_000.0
    a = on_benchmark(_agent(agent), bench, budget=budget, seed=1)
    b = on_benchmark(_agent(agent), bench, budget=budget, seed=1)
    assert len(a) >= 2 and a["cumulative_cost"].max() <= budget
    pd.testing.assert_frame_equal(a, b)  # same seed, same search
    assert (a["incumbent_valid_acc"] == a["valid_acc"].cummax()).all()
    again = bench.query(a.drop(columns=["step", "valid_acc", "cost", "cumulative_cost", "incumbent_valid_acc"]))
    np.testing.assert_allclose(again["valid_acc"].to_numpy(), a["valid_acc"].to_numpy(), rtol=1e-6)
    if agent in ("dehb", "smac_mf"):  # multi-fidelity in the epoch count: Hyperband's rungs 1, 3, 10 of 10
        assert set(a["epoch"]) == {1, 3, 10}
    else:
        assert set(a["epoch"]) == {10}


def test_benchmark_objective_charges_like_the_harness() -> None:
    import jahs_gym

    bench = jahs_gym.Benchmark("fashion_mnist")
    cfg = sample_config(0)
    rt = {e: bench({**cfg.as_dict(), "N": 1, "W": 4, "Resolution": 0.25}, nepochs=e)[e]["runtime"] for e in (3, 10)}
    obj = BenchmarkObjective(bench, budget=1e9, max_evaluations=3)
    obj(cfg, (1, 4, 0.25), 3)
    obj(cfg, (1, 4, 0.25), 10)  # continuation: only the extra epochs
    obj(cfg, (1, 4, 0.25), 3)  # already paid for
    assert obj(cfg, (1, 4, 0.25), 3) is None  # max_evaluations spent
    t = obj.trajectory()
    np.testing.assert_allclose(t["cost"], [rt[3], rt[10] - rt[3], 0.0])
    tight = BenchmarkObjective(bench, budget=rt[3] * 1.5)
    assert tight(cfg, (1, 4, 0.25), 3) is not None and tight(cfg, (1, 4, 0.5), 3) is None
    assert tight(cfg, (1, 4, 0.25), 1) is None  # over once, over for good


@pytest.mark.parametrize(("kw", "named"), [({"budget": float("nan")}, "budget=nan"), ({"budget": 0}, "budget=0"),
                                           ({"budget": 1.0, "max_evaluations": 0}, "max_evaluations=0"),
                                           ({"budget": 1.0, "max_evaluations": 2.5}, "max_evaluations=2.5")])
def test_benchmark_objective_refuses_bad_settings(kw: dict, named: str) -> None:
    import jahs_gym

    with pytest.raises(ValueError, match=named):
        BenchmarkObjective(jahs_gym.Benchmark("fashion_mnist"), **kw)
    with pytest.raises(ValueError, match="runtime"):
        BenchmarkObjective(jahs_gym.Benchmark("fashion_mnist", metrics=["valid_acc"]), budget=1.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DEHB 0.1.1 calls ConfigSpace 0.x methods
def test_the_libraries_own_loops_on_a_benchmark(tmp_path: Path) -> None:
    """Optuna's study.optimize, DEHB's run and a SMAC facade's optimize take the glue as it is."""
    import jahs_gym

    bench = jahs_gym.Benchmark("fashion_mnist")
    optuna = pytest.importorskip("optuna")
    from agents.optuna_tpe import benchmark_objective

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(benchmark_objective(bench), n_trials=6)
    best = Config.from_dict({**study.best_params})
    assert study.best_value == pytest.approx(bench(best.as_dict())[10]["valid_acc"])

    pytest.importorskip("dehb")
    from dehb import DEHB

    from agents.dehb_agent import benchmark_objective as dehb_f
    from agents.objective import config_space

    dehb = DEHB(f=dehb_f(bench), cs=config_space(0), min_fidelity=1, max_fidelity=bench.max_epochs, n_workers=1,
                output_path=str(tmp_path / "dehb"), seed=0)
    dehb.run(fevals=6)
    assert 0 < dehb.inc_score < 100

    pytest.importorskip("smac")
    from smac import HyperparameterOptimizationFacade, Scenario

    from agents.smac_agent import benchmark_target

    scenario = Scenario(config_space(0), n_trials=6, deterministic=True, output_directory=tmp_path / "smac")
    smac = HyperparameterOptimizationFacade(scenario, benchmark_target(bench), logging_level=40)
    inc = smac.optimize()
    assert smac.validate(inc) == pytest.approx(100 - bench(dict(inc))[10]["valid_acc"])


def test_the_harness_runs_the_new_baselines(tiny_data_env: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    names = [a for a in NEW if a not in NEEDS or __import__("importlib").util.find_spec(NEEDS[a][0])]
    from jahs_gym.bundle import load_bundle

    budget = str(4 * load_bundle(tiny_data_env).manifest.full_fidelity_cost_s)
    out = tmp_path / "out"
    assert main(["--task", tiny_data_env, "--agents", ",".join(names), "--seeds", "2", "--workers", "1",
                 "--budget", budget, "--max-steps", "40", "--out", str(out)]) == 0
    df = pd.read_parquet(out / "results.parquet")
    assert set(zip(df["agent"], df["seed"])) == {(a, s) for a in names for s in (0, 1)}
    text = capsys.readouterr().out
    assert [a for a in names if f"| {a} " not in text] == [], text


def test_an_agent_whose_extra_is_missing_is_refused_up_front(tiny_data_env: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from agents import bench

    monkeypatch.setitem(bench.NEEDS, "reinforce", ("no_such_module_jahs", "reinforce-extra"))
    assert main(["--task", tiny_data_env, "--agents", "random,reinforce", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "['reinforce']" in err and "pip install 'jahs-gym[reinforce-extra]'" in err
    assert not (tmp_path / "o").exists()
