"""Live runs: real training on demand under a tiny protocol (256 images, 2 epochs, the cheapest fidelity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jahs_gym.live import LiveError, LiveRuns
from jahs_gym.protocol import Protocol
from jahs_gym.space import Fidelity, sample_config

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

PROTOCOL = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=2).as_dict()
MEASURED = ["train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "FLOPS", "size_MB"]


def test_live_runs_train_once_continue_and_equal_a_fresh_run(tmp_path: Path) -> None:
    cfg = sample_config(3)
    live = LiveRuns("fashion_mnist", PROTOCOL, tmp_path / "a")
    one = live.curve(cfg, Fidelity(1, 4, 0.25, 1))
    assert list(one["epoch"]) == [1] and live.trained == 1
    shard = live.shard(cfg, Fidelity(1, 4, 0.25, 1))
    # a second query for the same or fewer epochs is served from the folder, by this or a new object
    again = LiveRuns("fashion_mnist", PROTOCOL, tmp_path / "a").curve(cfg, Fidelity(1, 4, 0.25, 1))
    assert again.equals(one) and live.trained == 1
    # more epochs continue the run from its checkpoint ...
    two = live.curve(cfg, Fidelity(1, 4, 0.25, 2))
    assert list(two["epoch"]) == [1, 2] and live.trained == 2
    assert not (tmp_path / "a" / "fashion_mnist" / "ckpt" / f"{shard.stem}.pt").exists()  # last epoch: dropped
    # ... and give the numbers of a run trained to 2 epochs in one go
    fresh = LiveRuns("fashion_mnist", PROTOCOL, tmp_path / "b").curve(cfg, Fidelity(1, 4, 0.25, 2))
    np.testing.assert_array_equal(two[MEASURED].to_numpy(), fresh[MEASURED].to_numpy())
    with pytest.raises(ValueError, match="epoch=3 is out of range; allowed: 1..2"):
        live.curve(cfg, Fidelity(1, 4, 0.25, 3))


def test_live_runs_refuse_another_protocol_a_missing_dataset_and_a_broken_shard(tmp_path: Path) -> None:
    cfg = sample_config(4)
    LiveRuns("fashion_mnist", PROTOCOL, tmp_path).curve(cfg, Fidelity(1, 4, 0.25, 1))
    other = dict(PROTOCOL, n_train=512)
    with pytest.raises(LiveError, match="trained under protocol"):
        LiveRuns("fashion_mnist", other, tmp_path).curve(cfg, Fidelity(1, 4, 0.5, 1))
    with pytest.raises(LiveError, match="dataset-fashion-mnist"):
        LiveRuns("fashion_mnist", PROTOCOL, tmp_path / "c", data_root=str(tmp_path / "empty")).curve(
            cfg, Fidelity(1, 4, 0.25, 1))
    live = LiveRuns("fashion_mnist", PROTOCOL, tmp_path)
    shard = live.shard(cfg, Fidelity(1, 4, 0.25, 1))
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(LiveError, match="unreadable.*delete it to retrain"):
        live.curve(cfg, Fidelity(1, 4, 0.25, 1))


@pytest.mark.parametrize(("kw", "match"), [({"save_dir": None}, "need save_dir"), ({"seed": -1}, "seed=-1"),
                                           ({"threads": 0}, "threads=0"), ({"seed": True}, "seed=True")])
def test_live_runs_refuse_bad_arguments(tmp_path: Path, kw: dict, match: str) -> None:
    args = {"save_dir": tmp_path, **kw}
    with pytest.raises(ValueError, match=match):
        LiveRuns("fashion_mnist", PROTOCOL, **args)


def test_jahs_v0_live_backend_trains_serves_and_continues(tiny_data_env: str, tmp_path: Path) -> None:
    import copy
    import pickle

    from jahs_gym.envs import JAHSEnv, JAHSVectorEnv

    env = JAHSEnv(task=tiny_data_env, backend="live", save_dir=str(tmp_path), n_epochs=2, continuation=True)
    env.reset(seed=0)
    a1 = np.array([0, 2, 3, 0, 1, 2, 0, 0, 3, 3, 0, 0, 0, 0])  # N1-W4-R0.25, epoch 1
    _, r1, _, _, info = env.step(a1)
    live = env.task.live
    run = live.curve(*_config_fidelity(info))  # served from the folder: no second training
    assert live.trained == 1 and info["valid_acc"] == run["valid_acc"].iloc[-1]
    assert info["cost"] == run["cpu_runtime"].iloc[-1] and isinstance(r1, float)
    twin = pickle.loads(pickle.dumps(env))  # the live folder travels with the env
    a2 = a1.copy()
    a2[-1] = 1  # the same run, epoch 2: continued from its checkpoint, charged the difference only
    _, _, _, _, info2 = env.step(a2)
    curve = live.curve(*_config_fidelity(info2))
    assert list(curve["epoch"]) == [1, 2] and live.trained == 2
    assert info2["cost"] == pytest.approx(curve["cpu_runtime"].iloc[1] - curve["cpu_runtime"].iloc[0])
    _, _, _, _, info3 = twin.step(a2)  # the copy reads what the original trained
    assert info3["metrics"] == info2["metrics"] and twin.task.live.trained == 0
    assert copy.deepcopy(env).step(a1)[4]["cost"] == 0.0  # fewer epochs of a run it trained: free
    venv = JAHSVectorEnv(2, task=tiny_data_env, backend="live", save_dir=str(tmp_path), n_epochs=2)
    venv.reset(seed=0)
    _, _, _, _, vinfo = venv.step(np.stack([a1, a2]))
    assert list(vinfo["valid_acc"]) == [info["valid_acc"], info2["valid_acc"]]


def _config_fidelity(info: dict):  # noqa: ANN202
    from jahs_gym.space import Config, Fidelity

    return Config.from_dict(info["config"]), Fidelity.from_dict(info["fidelity"])


@pytest.mark.parametrize(("kw", "match"), [
    ({"backend": "live", "noise": True}, "noise=True with backend='live'"),
    ({"backend": "live"}, "need save_dir"),
    ({"save_dir": "x"}, "for backend='live' only"),
    ({"backend": "table", "live_seed": 2}, "for backend='live' only"),
])
def test_jahs_v0_live_backend_refuses_bad_arguments(tiny_data_env: str, kw: dict, match: str) -> None:
    from jahs_gym.envs import JAHSEnv

    with pytest.raises(ValueError, match=match):
        JAHSEnv(task=tiny_data_env, n_epochs=2, **kw)


def test_benchmark_kind_live_answers_from_the_run_it_trained(tiny_data_env: str, tmp_path: Path) -> None:
    import pandas as pd

    import jahs_gym

    bench = jahs_gym.Benchmark(tiny_data_env, kind="live", save_dir=tmp_path / "data")
    cfg = {**sample_config(5).as_dict(), "N": 1, "W": 4, "Resolution": 0.25}
    curve = bench(cfg, nepochs=2, full_trajectory=True)
    shard = bench._live.shard(*_config_fidelity({"config": sample_config(5).as_dict(),
                                                 "fidelity": {"N": 1, "W": 4, "Resolution": 0.25, "epoch": 2}}))
    rows = pd.read_parquet(shard)
    assert shard.parent.parent == tmp_path / "data" / "live" / bench.bundle.task
    assert [curve[e]["valid_acc"] for e in (1, 2)] == rows["valid_acc"].tolist()
    frame = bench.query(pd.DataFrame([{**cfg, "epoch": 1}, {**cfg, "epoch": 2}]))
    assert frame["valid_acc"].tolist() == rows["valid_acc"].tolist() and bench._live.trained == 1
    with pytest.raises(ValueError, match="timings='corrected' with kind='live'"):
        jahs_gym.Benchmark(tiny_data_env, kind="live", save_dir=tmp_path, timings="corrected")
