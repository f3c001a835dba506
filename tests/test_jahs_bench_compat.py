"""Code written for JAHS-Bench-201 runs on jahs-gym with only the import line changed.

Each EXAMPLE below is a usage example of JAHS-Bench-201 (its README, docs/usage.md, jahs_bench/api.py and
jahs_bench_examples/), copied as written except for its import line. They run three ways: as written (task
cifar10, nepochs=200), which must fail with one clear error (no cifar10 bundle here, and jahs-gym never
downloads); with our task (fashion_mnist), which must fail naming the 10-epoch protocol; and with our task and
its 10 epochs, which must answer in the original's output shape and metric names.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import jahs_gym
import jahs_gym.compat as jahs_bench
from jahs_gym.benchmark import NO_DOWNLOAD
from jahs_gym.space import SpaceError

# the original's random_search.py calls Configuration.get_dictionary(), deprecated in ConfigSpace 1.x
pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

README_EVALUATING = '''
import jahs_gym.compat as jahs_bench

benchmark = jahs_bench.Benchmark(task="cifar10", download=True)

# Query a random configuration
config = benchmark.sample_config()
results = benchmark(config, nepochs=200)

# Display the outputs
print(f"Config: {config}")  # A dict
print(f"Result: {results}")  # A dict
'''

USAGE_TRAJECTORY = '''
import jahs_gym.compat as jahs_bench

benchmark = jahs_bench.Benchmark(task="cifar10", download=True)
config = benchmark.sample_config()
trajectory = benchmark(config, nepochs=200, full_trajectory=True)

print(trajectory)  # A dict of dicts
'''

USAGE_TABLE = '''
# Download the performance dataset
import jahs_gym.compat as jahs_bench

benchmark = jahs_bench.Benchmark(task="cifar10", kind="table", download=True)

# Query a random configuration
config = benchmark.sample_config()
results = benchmark(config, nepochs=200)

# Display the outputs
print(f"Config: {config}")
print(f"Result: {results}")
'''

USAGE_TABLE_TRAJECTORY = '''
# Download the performance dataset
import jahs_gym.compat as jahs_bench

benchmark = jahs_bench.Benchmark(task="cifar10", kind="table", download=True)

# Query a random configuration
config = benchmark.sample_config()
trajectory = benchmark(config, nepochs=200, full_trajectory=True)

# Display the outputs
print(f"Config: {config}")
print(f"Result: {trajectory}")
'''

MINIMAL = '''
import jahs_gym.compat as jahs_bench


def run():
    benchmark = jahs_bench.Benchmark(task="cifar10", kind="surrogate", download=True)
    config = benchmark.sample_config()
    results = benchmark(config, nepochs=200)
    print(f"Sampled random configuration: {config}\\nResults of query on the surrogate "
          f"model: {results}")


if __name__ == "__main__":
    run()
'''

API_MAIN = '''
from jahs_gym.compat import Benchmark

if __name__ == "__main__":
    b = Benchmark(task="cifar10", kind="surrogate")
    config = b.sample_config()
    print(f"Config: {config}")

    result = b(config, nepochs=config["epoch"])
    print(f"Result: {result}")
'''

RANDOM_SEARCH = '''
from jahs_gym.compat import Benchmark
from jahs_gym.compat import joint_config_space


if __name__ == "__main__":

    DATASET = "cifar10"
    MODEL_PATH = "."
    NEPOCHS = 200
    N_ITERATIONS = 100

    benchmark = Benchmark(
            task=DATASET,
            save_dir=MODEL_PATH,
            kind="surrogate",
            download=True
        )

    # Random Search
    configs = []
    results = []
    for it in range(N_ITERATIONS + 1):
        # Use benchmark ConfigSpace object to sample a random configuration.
        config = joint_config_space.sample_configuration().get_dictionary()
        result = benchmark(config, nepochs=NEPOCHS)

        configs.append(config)
        results.append(100 - float(result[NEPOCHS]["valid-acc"]))

    incumbent_idx = min(range(len(results)), key=results.__getitem__)
    incumbent = configs[incumbent_idx]
    incumbent_value = results[incumbent_idx]
    print(f"Incumbent: {incumbent} \\n Incumbent Value: {incumbent_value}")
'''

README_CONFIG = '''
import jahs_gym.compat as jahs_bench

config = {
    'Optimizer': 'SGD',
    'LearningRate': 0.1,
    'WeightDecay': 5e-05,
    'Activation': 'Mish',
    'TrivialAugment': False,
    'Op1': 4,
    'Op2': 1,
    'Op3': 2,
    'Op4': 0,
    'Op5': 2,
    'Op6': 1,
    'N': 5,
    'W': 16,
    'Resolution': 1.0,
}
benchmark = jahs_bench.Benchmark(task="cifar10", download=True)
results = benchmark(config, nepochs=200)
'''

USAGE_KINDS = '''
import jahs_gym.compat as jahs_bench

benchmark_surrogate = jahs_bench.Benchmark(task="cifar10", kind="surrogate", download=True)
benchmark_tabular = jahs_bench.Benchmark(task="cifar10", kind="table", download=True)
benchmark_live = jahs_bench.Benchmark(task="cifar10", kind="live", download=True)
'''

USAGE_LIVE = '''
# Initialize the pipeline
import jahs_gym.compat as jahs_bench

benchmark = jahs_bench.Benchmark(task="cifar10", kind="live", download=True)

# Query a random configuration
config = benchmark.sample_config()
trajectory = benchmark(config, nepochs=200, full_trajectory=True)

# Display the outputs
print(f"Config: {config}")
print(f"Result: {trajectory}")
'''

QUERIES = {"README_EVALUATING": README_EVALUATING, "USAGE_TRAJECTORY": USAGE_TRAJECTORY, "USAGE_TABLE": USAGE_TABLE,
           "USAGE_TABLE_TRAJECTORY": USAGE_TABLE_TRAJECTORY, "MINIMAL": MINIMAL, "API_MAIN": API_MAIN,
           "RANDOM_SEARCH": RANDOM_SEARCH, "README_CONFIG": README_CONFIG}
LIVE = {"USAGE_KINDS": USAGE_KINDS, "USAGE_LIVE": USAGE_LIVE}


def _run(src: str, task: str | None = None, epochs: int | None = None) -> dict:
    if task:
        src = src.replace('"cifar10"', f'"{task}"')
    if epochs:
        src = src.replace("nepochs=200", f"nepochs={epochs}").replace("NEPOCHS = 200", f"NEPOCHS = {epochs}")
    ns: dict = {"__name__": "__main__"}
    exec(compile(src, "<jahs-bench-example>", "exec"), ns)
    return ns


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_examples_as_written_fail_with_one_clear_error(name: str) -> None:
    """cifar10 has no bundle here: the error names the installed tasks and says that nothing is downloaded."""
    with pytest.raises(KeyError) as e:
        _run(QUERIES[name])
    msg = e.value.args[0]
    assert "no bundle for task 'cifar10'" in msg and "fashion_mnist" in msg
    assert ("download=True: " + NO_DOWNLOAD in msg) == ("download=True" in QUERIES[name])


@pytest.mark.parametrize("name", sorted(set(QUERIES) - {"API_MAIN"}))
def test_examples_at_200_epochs_name_the_protocol(name: str) -> None:
    with pytest.raises(SpaceError, match=r"nepochs=200 is out of range for task 'fashion_mnist': its protocol trains "
                                         r"10 epochs.*JAHS-Bench-201 trained 200 epochs"):
        _run(QUERIES[name], task="fashion_mnist")


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_examples_run_on_our_task_and_protocol(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    ns = _run(QUERIES[name], task="fashion_mnist", epochs=10)
    out = capsys.readouterr().out
    answers = [ns[k] for k in ("results", "trajectory", "result") if k in ns]
    if name == "RANDOM_SEARCH":
        assert len(ns["results"]) == 101 and all(0 <= r <= 100 for r in ns["results"])
        assert "Incumbent Value" in out and ns["incumbent_value"] == min(ns["results"])
        return
    if name == "MINIMAL":
        assert "Results of query on the surrogate model: {10: {" in out
        return
    (answer,) = answers
    epochs = list(range(1, 11)) if "full_trajectory=True" in QUERIES[name] else [10]
    assert list(answer) == epochs
    for e in epochs:
        assert {"valid-acc", "train-acc", "test-acc", "runtime", "latency", "FLOPS", "size_MB"} <= set(answer[e])
        assert 0 <= answer[e]["valid-acc"] <= 100
    if "config" in ns and name != "README_CONFIG":
        assert {"N", "W", "Resolution", "epoch"} <= set(ns["config"]) and ns["config"]["epoch"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE))
def test_live_examples_train_for_real(name: str, tiny_data_env: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """kind="live" on the tiny task (256 images, 2 epochs): the run is trained into ./jahs_bench_data/live/<task>,
    the original's default data folder, and a second benchmark answers the same query from there."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    ns = _run(LIVE[name], task=tiny_data_env, epochs=2)
    live = ns.get("benchmark", ns.get("benchmark_live"))
    assert live.kind == "live" and live._live.folder == Path("jahs_bench_data") / "live" / live.bundle.task
    if name == "USAGE_LIVE":
        trajectory = ns["trajectory"]
        assert live._live.trained == 1 and 1 <= len(trajectory) <= 2 and "valid-acc" in trajectory[1]
        assert "Result: {1: {" in capsys.readouterr().out
        again = jahs_bench.Benchmark(task=tiny_data_env, kind="live")(ns["config"], nepochs=2, full_trajectory=True)
        assert again == trajectory


# ------------------------------------------------------------------------------ the API's parts
def test_signature_is_the_originals() -> None:
    import inspect

    for cls in (jahs_gym.Benchmark, jahs_bench.Benchmark):
        params = list(inspect.signature(cls.__init__).parameters)[1:7]
        assert params == ["task", "kind", "download", "save_dir", "metrics", "lazy"]
    assert list(inspect.signature(jahs_gym.Benchmark.__call__).parameters)[1:4] == ["config", "nepochs",
                                                                                   "full_trajectory"]
    assert [t.value for t in jahs_bench.BenchmarkTypes] == ["surrogate", "table", "live"]
    assert {"cifar10", "colorectal_histology", "fashion_mnist"} <= {t.value for t in jahs_bench.BenchmarkTasks}


def test_tasks_and_kinds_as_enums_or_any_case() -> None:
    a = jahs_bench.Benchmark(jahs_bench.BenchmarkTasks.FashionMNIST, jahs_bench.BenchmarkTypes.Surrogate)
    b = jahs_bench.Benchmark("Fashion_MNIST")
    assert a.task == b.task == "fashion_mnist" and a.bundle is b.bundle
    t = jahs_bench.Benchmark(task="MNIST", kind=jahs_bench.BenchmarkTypes.Table)
    assert t.kind == "table" and t.task == "mnist"
    with pytest.raises(ValueError, match="kind='tabular' is not allowed"):
        jahs_bench.Benchmark("fashion_mnist", kind="tabular")


def test_metric_names_in_both_spellings() -> None:
    orig = jahs_bench.Benchmark("fashion_mnist", metrics=["valid-acc", "runtime"])
    native = jahs_gym.Benchmark("fashion_mnist", metrics=["valid-acc", "runtime"])
    same = jahs_gym.Benchmark("fashion_mnist", metrics=("valid_acc", "runtime"))
    config = orig.sample_config(random_state=0)
    assert orig.metrics == ("valid-acc", "runtime") and native.metrics == same.metrics == ("valid_acc", "runtime")
    assert orig(config)[10]["valid-acc"] == native(config)[10]["valid_acc"] == same(config)[10]["valid_acc"]
    assert jahs_bench.Benchmark("fashion_mnist", names="native")(config) == jahs_gym.Benchmark("fashion_mnist")(config)
    q = orig.query(__import__("pandas").DataFrame([config]))
    assert list(q.columns) == ["valid-acc", "runtime"]


def test_sample_config_is_the_full_joint_config_and_seeded() -> None:
    b = jahs_bench.Benchmark("fashion_mnist")
    c = b.sample_config(random_state=3)
    assert set(c) == {*jahs_gym.space.CONFIG_KEYS, "N", "W", "Resolution", "epoch"} and c["epoch"] == b.max_epochs
    assert b.sample_config(random_state=3) == c != b.sample_config(random_state=4)
    assert b.sample_config(np.random.RandomState(0)) == b.sample_config(np.random.RandomState(0))
    assert b(c) == b(c, nepochs=c["epoch"]) == b(c, nepochs=b.max_epochs)
    draws = [b.sample_config(random_state=s) for s in range(60)]
    assert {d["N"] for d in draws} == {1, 3, 5} and {d["Resolution"] for d in draws} == {0.25, 0.5, 1.0}
    with pytest.raises(ValueError, match=r"random_state=-1 is not allowed"):
        b.sample_config(random_state=-1)
    with pytest.raises(SpaceError, match=r"config\['epoch'\]=10 and nepochs=5 disagree; give the epoch once"):
        b(c, nepochs=5)


def test_table_samples_are_trained_rows() -> None:
    b = jahs_bench.Benchmark("fashion_mnist", kind="table")
    for seed in range(20):  # the 20 tries: each one answers
        config = b.sample_config(random_state=seed)
        out = b(config, nepochs=10)
        assert list(out) == [10] and 0 <= out[10]["valid-acc"] <= 100
    assert list(b(config, nepochs=10, full_trajectory=True)) == list(range(1, 11))


def test_download_save_dir_and_lazy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from jahs_gym.bundle import DATA_DIR

    with caplog.at_level(logging.INFO, logger="jahs_gym.benchmark"):
        jahs_bench.Benchmark("mnist", download=True)
    assert "jahs-gym never downloads" in caplog.text
    shutil.copytree(DATA_DIR / "mnist", tmp_path / "mine" / "mnist")
    here = jahs_bench.Benchmark("mnist", save_dir=tmp_path / "mine")
    assert here.bundle.folder == tmp_path / "mine" / "mnist"
    assert jahs_bench.Benchmark("mnist", save_dir=str(tmp_path / "mine" / "mnist")).bundle.folder == here.bundle.folder
    assert jahs_bench.Benchmark("fashion_mnist", save_dir=tmp_path / "mine").bundle.folder == DATA_DIR / "fashion_mnist"
    with pytest.raises(ValueError, match=r"save_dir=.* is not a folder"):
        jahs_bench.Benchmark("mnist", save_dir=tmp_path / "nope")
    for name, bad in (("download", "yes"), ("lazy", 1)):
        with pytest.raises(ValueError, match=f"{name}=.* must be True or False"):
            jahs_bench.Benchmark("mnist", **{name: bad})
    assert jahs_bench.Benchmark("mnist")._predictor is not None  # lazy=False: loaded now
    lazy = jahs_bench.Benchmark("mnist", lazy=True)
    assert lazy._predictor is None
    lazy(lazy.sample_config(0))
    assert lazy._predictor is not None


def test_joint_config_space_is_the_originals_object() -> None:
    pytest.importorskip("ConfigSpace")
    from jahs_gym.compat import joint_config_space

    assert joint_config_space is jahs_bench.joint_config_space and len(list(joint_config_space.keys())) == 14
    b = jahs_bench.Benchmark("fashion_mnist")
    for _ in range(20):
        config = dict(joint_config_space.sample_configuration())
        assert list(b(config, nepochs=5)) == [5]
