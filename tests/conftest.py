"""Shared fixtures: a tiny table and bundle made by the real pipeline, and a synthetic table for fitting math."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jahs_gym.metrics import METRIC_NAMES
from jahs_gym.space import all_fidelities, fidelity_id, sample_configs

TINY_FIDELITIES = "1,4,0.25 1,8,0.25 3,4,0.25 1,4,0.5"
SYNTHETIC_METRICS = ["valid_acc", "runtime", "train_loss"]


def make_tiny_run(run_dir: Path, n_tasks: int = 36, epochs: int = 2, fidelities: str = TINY_FIDELITIES,
                  seed: int = 0) -> Path:
    """Plan a tiny real run (256 training images, cheapest fidelities)."""
    from generation.plan import make_plan, parse_fidelities
    from jahs_gym.protocol import Protocol

    proto = Protocol("fashion_mnist", n_train=256, n_valid=128, n_test=128, max_epochs=epochs)
    fids = parse_fidelities(fidelities)
    plan = make_plan(proto, n_tasks, seed=seed, min_per_fidelity=max(1, n_tasks // (2 * len(fids))),
                     repeat_share=0.2, fidelities=fids, progress=False)
    plan.save(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table trained for real by generation.run (one rank, in process) and merged."""
    from generation.merge import merge
    from generation.run import run

    run_dir = make_tiny_run(tmp_path_factory.mktemp("tiny_run"))
    os.environ["JAHS_NO_MPI"] = "1"
    try:
        run(run_dir, log=lambda s: None)
    finally:
        del os.environ["JAHS_NO_MPI"]
    out = run_dir / "table.parquet"
    merge([run_dir], out)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle fitted on the tiny real table, in a folder named ``fmnist_tiny``."""
    import json

    from generation.fit import fit_bundle

    root = tmp_path_factory.mktemp("bundles")
    plan = json.loads((tiny_table.parent / "plan.json").read_text())
    fit_bundle(tiny_table, root / "fmnist_tiny", folds=3, trials=1, ship_table=True, protocol=plan["protocol"],
               progress=False, max_trees=60, optimum_rows=20_000)
    return root / "fmnist_tiny"


@pytest.fixture()
def tiny_data_env(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """JAHS_GYM_DATA points at the tiny bundle's folder; returns its task name."""
    from jahs_gym import bundle

    monkeypatch.setenv("JAHS_GYM_DATA", str(tiny_bundle.parent))
    bundle.load_bundle.cache_clear()
    yield "fmnist_tiny"
    bundle.load_bundle.cache_clear()


def synthetic_table(n_configs: int = 120, epochs: int = 4, seed: int = 0) -> pd.DataFrame:
    """SYNTHETIC (for fitting-math tests only): metrics are a known function of the config plus noise."""
    rng = np.random.default_rng(seed)
    fids = all_fidelities()
    rows = []
    for i, c in enumerate(sample_configs(n_configs, seed)):
        n, w, r = fids[i % len(fids)]
        for s in [0, 1] if i % 8 == 0 else [0]:
            rt = 0.0
            for e in range(1, epochs + 1):
                acc = 40 + 10 * np.log(e) + 4 * c.ops.count("nor_conv_3x3") + 10 * r + rng.normal(0, 0.5)
                rt += n * w * r * 0.3
                d = {"task": "synthetic", "task_id": f"{c.config_id}-{fidelity_id(n, w, r)}-s{s}",
                     "config_id": c.config_id, "fidelity_id": fidelity_id(n, w, r), "seed": s, "status": "ok",
                     "rank": 0, "host": "synthetic", "torch_version": "none", "jahs_gym_version": "0",
                     "epoch_started": 1.7e9 + 60.0 * len(rows),
                     **c.as_dict(), "N": n, "W": w, "Resolution": r, "epoch": e}
                d.update({m: 1.0 for m in METRIC_NAMES})
                d.update(valid_acc=acc, train_acc=acc + 2, test_acc=acc - 1, runtime=rt, cpu_runtime=0.9 * rt,
                         train_loss=2 / e,
                         valid_loss=2.2 / e, test_loss=2.3 / e, latency=1e-5 * n * w, FLOPS=n * w * r * r,
                         size_MB=n * w / 100)
                rows.append(d)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generation.fit import fit_bundle

    root = tmp_path_factory.mktemp("synthetic")
    synthetic_table().to_parquet(root / "table.parquet")
    fit_bundle(root / "table.parquet", root / "synthetic", folds=3, trials=2, ship_table=True, progress=False,
               metrics=SYNTHETIC_METRICS, max_trees=100)
    return root / "synthetic"
