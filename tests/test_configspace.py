"""The ConfigSpace spaces as SMAC3, DEHB and NePS consume them: sampling, vectors, JSON and back, and every sample
answered by Benchmark. (ConfigSpace level: the optimisers themselves are not needed for this.)"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ConfigSpace")
import ConfigSpace as CS  # noqa: E402

from jahs_gym import Benchmark, Config  # noqa: E402
from jahs_gym.configspace import (  # noqa: E402
    FIDELITY_NAMES,
    JOINT_ORDER,
    fidelities,
    fidelity_space,
    joint_config_space,
    search_space,
)
from jahs_gym.space import SpaceError  # noqa: E402

NEPS_TYPES = (CS.Constant, CS.CategoricalHyperparameter, CS.OrdinalHyperparameter, CS.UniformFloatHyperparameter,
              CS.UniformIntegerHyperparameter)


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    return Benchmark("fashion_mnist")


def test_joint_space_is_jahs_bench_201s() -> None:
    cs = joint_config_space(seed=0)
    assert len(cs) == 14 and set(cs) == set(JOINT_ORDER)
    assert JOINT_ORDER == ("N", "W", "Op1", "Op2", "Op3", "Op4", "Op5", "Op6", "Resolution", "TrivialAugment",
                           "Activation", "Optimizer", "LearningRate", "WeightDecay")  # the original's add order
    d = dict(cs.get_default_configuration())
    assert d == {"N": 1, "W": 4, **{f"Op{i}": 0 for i in range(1, 7)}, "Resolution": 1.0, "TrivialAugment": False,
                 "Activation": "ReLU", "Optimizer": "SGD", "LearningRate": 0.1, "WeightDecay": 5e-4}
    assert list(cs["TrivialAugment"].choices) == [True, False]
    assert list(cs["Activation"].choices) == ["ReLU", "Hardswish", "Mish"]
    assert list(cs["Resolution"].sequence) == [0.25, 0.5, 1.0] and list(cs["N"].sequence) == [1, 3, 5]
    assert isinstance(cs["Optimizer"], CS.Constant)
    assert cs["LearningRate"].log and (cs["LearningRate"].lower, cs["LearningRate"].upper) == (1e-3, 1.0)
    assert (cs["WeightDecay"].lower, cs["WeightDecay"].upper) == (1e-5, 1e-2)


@pytest.mark.parametrize("make", [joint_config_space, search_space, lambda seed: fidelity_space(10, seed=seed)])
def test_neps_smac_dehb_style_consumers_accept_it(make, bench: Benchmark) -> None:
    cs = make(seed=1)
    # NePS: every hyperparameter of a kind it converts; no single-choice categorical, no conditions
    for hp in cs.values():
        assert isinstance(hp, NEPS_TYPES), hp
        assert not (isinstance(hp, CS.CategoricalHyperparameter) and len(hp.choices) < 2), hp
    assert not cs.conditions and not cs.forbidden_clauses
    # JSON and back (SMAC3 and DEHB write the space to their run folders)
    buf = io.StringIO()
    cs.to_json(buf)
    back = CS.ConfigurationSpace.from_json(io.StringIO(buf.getvalue()))
    assert back == cs
    samples = cs.sample_configuration(200)
    # DEHB works on vectors in [0, 1]^d and maps them back; SMAC3 on Configurations
    for c in samples[:50]:
        assert CS.Configuration(back, vector=c.get_array()) == CS.Configuration(back, values=dict(c))
    rows = [dict(c) for c in samples]
    if len(cs) == 11:
        for r in rows:
            Config.from_dict(r)
        rows = [{**r, "N": 1, "W": 8, "Resolution": 0.5} for r in rows]
    df = pd.DataFrame(rows)
    if "epoch" not in df:
        df["epoch"] = bench.max_epochs
    batch = bench.query(df)
    assert batch.notna().all().all() and len(batch) == 200
    for i in range(0, 200, 40):  # the scalar API answers the same
        got = bench(rows[i], nepochs=int(df["epoch"].iloc[i]))
        assert next(iter(got.values())) == pytest.approx(batch.iloc[i].to_dict())


def test_fidelity_space_has_ordinal_fidelities_and_whole_epochs() -> None:
    cs = fidelity_space(max_epochs=10, seed=0)
    assert len(cs) == 15 and set(fidelities(cs)) == set(FIDELITY_NAMES)
    for k in FIDELITY_NAMES:
        assert isinstance(cs[k], CS.OrdinalHyperparameter)
    assert list(cs["epoch"].sequence) == list(range(1, 11)) and cs["epoch"].default_value == 10
    epochs = {dict(c)["epoch"] for c in cs.sample_configuration(300)}
    assert epochs == set(range(1, 11))
    assert set(fidelities(joint_config_space())) == {"N", "W", "Resolution"}
    assert fidelities(search_space()) == []
    for bad in (0, 2.5, True, None):
        with pytest.raises(ValueError, match="max_epochs=.* must be an integer >= 1"):
            fidelity_space(max_epochs=bad)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=15, max_size=15))
def test_any_unit_vector_is_a_valid_query(v: list[float]) -> None:
    """DEHB's mutation and crossover produce any point of [0, 1]^d; mapped to the space, each one is answerable."""
    cs = fidelity_space(10)
    vec = np.array(v)
    for i, hp in enumerate(cs.values()):  # as DEHB's vector_to_configspace: [0, 1] -> a choice index or a value
        if isinstance(hp, CS.OrdinalHyperparameter):
            vec[i] = np.floor(v[i] * len(hp.sequence) - 1e-12).clip(0)
        elif isinstance(hp, CS.CategoricalHyperparameter):
            vec[i] = np.floor(v[i] * len(hp.choices) - 1e-12).clip(0)
        elif isinstance(hp, CS.Constant):
            vec[i] = 0
    config = dict(CS.Configuration(cs, vector=vec))
    out = Benchmark("fashion_mnist", lazy=True)(config)
    assert list(out) == [config["epoch"]]


def test_real_budgets_are_refused_with_the_mapping(bench: Benchmark) -> None:
    """DEHB's budgets at eta=3 from 1 to 10 are 1.11, 3.33 and 10: refused with how to map them, never rounded."""
    config = bench.sample_config(0)
    config.pop("epoch")
    for budget in (10 / 9, 10 / 3):
        with pytest.raises(SpaceError, match=r"epoch=3.33.* is not allowed; allowed: an integer >= 1 \(a multi-"
                                             r"fidelity optimiser's real budget.*round\(budget\).*fidelity_space"
                                             if budget > 3 else r"epoch=1.1.* is not allowed"):
            bench(config, nepochs=budget)
    assert list(bench(config, nepochs=round(10 / 3))) == [3]
    assert list(bench(config, nepochs=10.0)) == [10]  # a whole number as a float is that epoch
