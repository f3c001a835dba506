"""Bad and borderline inputs to the query API, the CLI and JAHS-v0's arguments: honoured or refused, never ignored.

Runs on the embedded fashion_mnist bundle. The scalar API (dicts) and the DataFrame API share one rule per key
(``jahs_gym.space``): hypothesis checks that they accept and refuse the same values and answer alike.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jahs_gym
from jahs_gym import Benchmark
from jahs_gym.space import LR_RANGE, ROW_KEYS, WD_RANGE, SpaceError, bound_slack

CFG = {"Op1": 2, "Op2": 2, "Op3": 0, "Op4": 3, "Op5": 4, "Op6": 0, "Activation": "Mish", "TrivialAugment": True,
       "Optimizer": "SGD", "LearningRate": 0.05, "WeightDecay": 1e-3}
ROW = {**CFG, "N": 3, "W": 8, "Resolution": 0.5, "epoch": 4}
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    return Benchmark("fashion_mnist")


def _ulps32(x: float, k: int) -> float:
    """``x`` moved ``k`` float32 ulps (of x) up (k > 0) or down."""
    return x + k * float(np.spacing(np.float32(abs(x))))


# ------------------------------------------------------------------------------------- epoch
def test_the_configs_epoch_is_honoured(bench: Benchmark) -> None:
    at3 = bench({**ROW, "epoch": 3})
    assert list(at3) == [3]
    no_epoch = {k: v for k, v in ROW.items() if k != "epoch"}
    assert bench(no_epoch, nepochs=3) == at3 == bench(no_epoch, epoch=3) == bench({**ROW, "epoch": 3}, nepochs=3)
    assert list(bench(no_epoch)) == [bench.max_epochs]  # no epoch anywhere: the task's max
    assert bench(no_epoch)[10]["valid_acc"] != at3[3]["valid_acc"]
    assert list(bench({**ROW, "epoch": 3}, full_trajectory=True)) == [1, 2, 3]
    assert list(bench.learning_curve({**ROW, "epoch": 3}).index) == [1, 2, 3]


@pytest.mark.parametrize(("call", "needle"), [
    (lambda b: b({**ROW, "epoch": 3}, nepochs=10), "config['epoch']=3 and nepochs=10 disagree"),
    (lambda b: b({**ROW, "epoch": 3}, epoch=5), "config['epoch']=3 and epoch=5 disagree"),
    (lambda b: b(CFG, nepochs=2, epoch=5), "epoch=5 and nepochs=2 disagree"),
    (lambda b: b(ROW, N=1), "config['N']=3 and N=1 disagree"),
    (lambda b: b(ROW, Resolution=1.0), "config['Resolution']=0.5 and Resolution=1.0 disagree"),
    (lambda b: b(ROW, N=True), "config['N']=3 and N=True disagree"),
    (lambda b: b(CFG, nepochs=11), "nepochs=11 is out of range for task 'fashion_mnist': its protocol trains 10"),
    (lambda b: b(CFG, nepochs=200), "(JAHS-Bench-201 trained 200 epochs"),
    (lambda b: b(CFG, nepochs=0), "epoch=0 is not allowed; allowed: an integer >= 1"),
    (lambda b: b(CFG, nepochs=3.33), "epoch=3.33 is not allowed; allowed: an integer >= 1 (a multi-fidelity"),
    (lambda b: b(CFG, nepochs=True), "epoch=True is not allowed"),
    (lambda b: b({**CFG, "epoch": "3"}), "epoch='3' is not allowed"),
])
def test_an_epoch_or_fidelity_given_twice_or_out_of_range_is_refused(bench: Benchmark, call, needle: str) -> None:
    with pytest.raises(SpaceError) as e:
        call(bench)
    assert needle in str(e.value)


# ---------------------------------------------------------------------------------- bounds
BOUNDS = [("LearningRate", LR_RANGE[0]), ("LearningRate", LR_RANGE[1]), ("WeightDecay", WD_RANGE[0]),
          ("WeightDecay", WD_RANGE[1])]


@pytest.mark.parametrize(("key", "bound"), BOUNDS)
def test_round_off_at_a_bound_is_clamped(bench: Benchmark, key: str, bound: float) -> None:
    lo, hi = LR_RANGE if key == "LearningRate" else WD_RANGE
    exact = bench({**ROW, key: bound})
    for near in (math.exp(math.log(bound)), float(np.float32(bound)), float(np.float32(math.exp(math.log(bound)))),
                 _ulps32(bound, 4 if bound == hi else -4)):
        assert jahs_gym.Config.from_dict({**CFG, key: near}).as_dict()[key] == min(max(near, lo), hi)
        assert bench({**ROW, key: near})[4] == pytest.approx(exact[4], rel=1e-6)
        assert bench.query(pd.DataFrame([{**ROW, key: near}])).iloc[0].to_dict() == pytest.approx(exact[4], rel=1e-6)
    assert jahs_gym.Config.from_dict({**CFG, key: _ulps32(bound, 4 if bound == hi else -4)}).as_dict()[key] == bound
    assert math.exp(math.log(1e-2)) == 0.010000000000000004  # the value nevergrad sent


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(BOUNDS), st.integers(-40, 40))
def test_the_slack_is_four_float32_ulps_in_both_apis(kb: tuple[str, float], k: int) -> None:
    key, bound = kb
    lo, hi = LR_RANGE if key == "LearningRate" else WD_RANGE
    v = _ulps32(bound, k)
    outward = (v - hi) if bound == hi else (lo - v)
    inside = lo <= v <= hi
    accepted = inside or outward <= bound_slack(bound)
    assert accepted == (inside or abs(k) <= 4)
    frame = pd.DataFrame([{**ROW, key: v}])
    if accepted:
        assert jahs_gym.Config.from_dict({**CFG, key: v}).as_dict()[key] == min(max(v, lo), hi)
        jahs_gym.space.frame_columns(frame, 10)
    else:
        with pytest.raises(SpaceError, match=f"{key}=.* is out of range"):
            jahs_gym.Config.from_dict({**CFG, key: v})
        with pytest.raises(SpaceError, match=f"query row 0: Config: {key}=.* is out of range"):
            jahs_gym.space.frame_columns(frame, 10)


def test_env_dict_actions_share_the_bound_rule() -> None:
    env = gym.make("JAHS-v0", action_type="dict")
    env.reset(seed=0)
    a = env.action_space.sample()
    a["WeightDecay"] = np.array([np.float32(1e-5)], dtype=np.float32)
    a["LearningRate"] = np.array([math.exp(math.log(1.0))])
    assert env.unwrapped.decode(a)["WeightDecay"] == 1e-5
    a["WeightDecay"] = np.array([_ulps32(1e-2, 6)])
    with pytest.raises(ValueError, match=r"action\['WeightDecay'\]=.* is not allowed; allowed: a float in"):
        env.step(a)


# ------------------------------------------------------------------------- types of arguments
def test_metrics_as_one_name_or_a_list(bench: Benchmark) -> None:
    b = Benchmark("fashion_mnist", metrics="valid_acc")
    assert b.metrics == ("valid_acc",) and set(b(ROW)[4]) == {"valid_acc"}
    for bad in (5, [], ["valid_acc", 3], 2.5):
        with pytest.raises(ValueError, match="metrics=.* must be None"):
            Benchmark("fashion_mnist", metrics=bad)
    with pytest.raises(KeyError, match=r"metric\(s\) \['valid_ac'\] are not in the fashion_mnist bundle"):
        Benchmark("fashion_mnist", metrics="valid_ac")


@pytest.mark.parametrize("task", [None, 3, "", ["fashion_mnist"], 1.5])
def test_task_of_the_wrong_type_is_refused(task: object) -> None:
    with pytest.raises(ValueError, match=r"task=.* is not allowed; allowed: an installed task's name"):
        Benchmark(task)


@pytest.mark.parametrize("config", [[1, 2], None, "Op1=2", 3, ("Op1", 2)])
def test_config_of_the_wrong_type_is_refused(bench: Benchmark, config: object) -> None:
    with pytest.raises(SpaceError, match=r"config=.* must be a dict of JAHS-Bench-201 keys"):
        bench(config)


@pytest.mark.parametrize("df", [[1, 2], None, {"Op1": [2]}, pd.Series(ROW)])
def test_query_needs_a_dataframe(bench: Benchmark, df: object) -> None:
    with pytest.raises(SpaceError, match="query needs a pandas DataFrame"):
        bench.query(df)


def test_query_columns_are_named(bench: Benchmark) -> None:
    with pytest.raises(SpaceError, match=r"missing column\(s\) \['epoch'\]"):
        bench.query(pd.DataFrame([CFG | {"N": 1, "W": 4, "Resolution": 1.0}]))
    with pytest.raises(SpaceError, match=r"unknown column\(s\) \['Dropout'\]"):
        bench.query(pd.DataFrame([{**ROW, "Dropout": 0.1}]))


# ---------------------------------------------------------------- one rule for dicts and frames
def test_object_dtype_columns_answer_like_typed_ones(bench: Benchmark) -> None:
    rows = [ROW, {**ROW, "Op1": 4, "N": 5, "Resolution": 1.0}, {**ROW, "Op3": "nor_conv_3x3", "epoch": 10.0}]
    typed = pd.DataFrame(rows[:2])
    as_objects = typed.astype(object)
    assert as_objects["Op1"].dtype == object
    pd.testing.assert_frame_equal(bench.query(as_objects), bench.query(typed))
    mixed = bench.query(pd.DataFrame(rows))  # op names and indices mixed, an epoch as 10.0
    for i, r in enumerate(rows):
        assert mixed.iloc[i].to_dict() == pytest.approx(next(iter(bench(r).values())))


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("N", True, "Fidelity: N=True is not allowed"),
    ("W", np.True_, "is not allowed; allowed: [4, 8, 16]"),
    ("LearningRate", "0.1", "Config: LearningRate='0.1' must be a real number"),
    ("LearningRate", float("nan"), "Config: LearningRate is NaN"),
    ("WeightDecay", float("inf"), "Config: WeightDecay=inf is out of range"),
    ("TrivialAugment", 1, "Config: TrivialAugment=1 is not allowed"),
    ("Op2", 5, "Config: Op2=5 is not allowed"),
    ("Op2", 2.5, "Config: Op2=2.5 is not allowed"),
    ("Activation", None, "Config: Activation"),  # pandas may turn None into NaN: either is refused
    ("Optimizer", "Adam", "Config: Optimizer='Adam' is not allowed"),
    ("Resolution", 0.3, "Fidelity: Resolution=0.3 is not allowed"),
    ("epoch", 11, "=11 is out of range"),
    ("epoch", 2.5, "epoch=2.5 is not allowed"),
])
def test_a_bad_value_is_refused_by_dicts_and_frames_alike(bench: Benchmark, key: str, value: object,
                                                           needle: str) -> None:
    with pytest.raises(SpaceError, match=None) as scalar:
        bench({**ROW, key: value})
    assert needle in str(scalar.value)
    frames = [pd.DataFrame([ROW, {**ROW, key: value}]), pd.DataFrame([ROW, {**ROW, key: value}]).astype(object)]
    for df in frames:
        with pytest.raises(SpaceError) as framed:
            bench.query(df)
        assert str(framed.value).startswith("query row 1: ") and needle in str(framed.value)


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from(["ReLU", "Mish", "SGD", "none", "nor_conv_1x1", "0.1", "", "True"]),
                 st.sampled_from([0.25, 0.5, 1.0, 1e-3, 1e-2, 1e-5, 3, 5, 8, 16]))


@HYP
@given(st.sampled_from(ROW_KEYS), JUNK)
def test_dicts_and_frames_accept_and_refuse_the_same_values(bench: Benchmark, key: str, value: object) -> None:
    row = {**ROW, key: value}
    try:
        want = bench(row)
    except SpaceError as e:
        want = e
    for df in (pd.DataFrame([row]), pd.DataFrame([row]).astype(object)):
        try:
            got = bench.query(df).iloc[0].to_dict()
        except SpaceError as e:
            got = e
        if isinstance(want, SpaceError):
            assert isinstance(got, SpaceError), (key, value, df.dtypes[key])
            assert str(got) == f"query row 0: {want}" or key == "epoch"  # the frame names the row
        else:
            assert not isinstance(got, SpaceError), (key, value, got)
            assert got == pytest.approx(next(iter(want.values()))), (key, value)


# ----------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("argv", [
    ["query", "--config", "[1, 2]"], ["query", "--config", "null"], ["query", "--config", "{bad json"],
    ["query", "--config", '"Op1"'], ["query", "--seed", "-1"], ["query", "--seed", "x"], ["query", "--epochs", "200"],
    ["query", "--epochs", "0"], ["query", "--N", "2"], ["query", "--resolution", "nan"], ["query", "--task", "nope"],
    ["query", "--task", "FASHION"], ["query", "--config", '{"Op1": 2}'],
    ["query", "--config", '{"Op1":2,"Op2":2,"Op3":0,"Op4":3,"Op5":4,"Op6":0}', "--seed", "3"],
    ["query", "--config", '{"Op1":2,"Op2":2,"Op3":0,"Op4":3,"Op5":4,"Op6":0,"epoch":3}', "--epochs", "5"],
    ["demo", "--steps", "0"], ["demo", "--steps", "-4"], ["demo", "--seed", "-1"], ["demo", "--task", "nope"],
])
def test_cli_bad_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from jahs_gym.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own checks (types, --seed >= 0, --steps >= 1)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_cli_echoes_the_epoch_it_answers_for(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from jahs_gym.cli import main

    cfg = '{"Op1":2,"Op2":2,"Op3":0,"Op4":3,"Op5":4,"Op6":0,"N":3,"W":8,"Resolution":0.5,"epoch":3}'
    assert main(["query", "--config", cfg]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["epoch"] == 3 and list(out["result"]) == ["3"]


# ----------------------------------------------------------------------------------- JAHS-v0
@pytest.mark.parametrize(("kw", "needle"), [
    ({"cost_weight": float("nan")}, "cost_weight=nan must be a finite number"),
    ({"cost_weight": float("inf")}, "cost_weight=inf must be a finite number"),
    ({"reward": "multiobjective", "reward_weights": {"latency": float("nan")}},
     "reward_weights['latency']=nan must be a finite number"),
    ({"reward": "multiobjective", "reward_weights": {"size": float("-inf")}}, "reward_weights['size']=-inf"),
    ({"budget": float("nan")}, "budget=nan must be a positive, finite number"),
    ({"budget": float("inf")}, "budget=inf must be a positive, finite number"),
    ({"budget": 0}, "budget=0 must be a positive"),
    ({"max_steps": 0}, "max_steps=0 must be a positive integer"),
    ({"max_steps": float("nan")}, "max_steps=nan must be a positive integer"),
    ({"n_lr": 0}, "n_lr=0 must be a positive integer"),
    ({"n_epochs": 2.0}, "n_epochs=2.0 must be a positive integer"),
    ({"n_arms": float("nan")}, "n_arms=nan must be a positive integer"),
    ({"arm_seed": -1}, "arm_seed=-1 must be a non-negative integer"),
    ({"noise": float("nan")}, "noise=nan must be True or False"),
    ({"continuation": 1}, "continuation=1 must be True or False"),
])
def test_env_numeric_arguments_are_finite_and_in_range(kw: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        gym.make("JAHS-v0", **kw)
    assert needle in str(e.value)
