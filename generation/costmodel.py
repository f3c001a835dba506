"""A measured cost model: core-seconds to train and evaluate one task, from its MFLOPs.

``python -m generation costmodel --task fashion_mnist`` trains a few random configurations for one
epoch at every (N, W, Resolution) on this machine and fits, for training and for evaluation,
``seconds per image = a + b * MFLOPs + c * MElems``, where MElems counts the output elements of every
layer for one image (millions): small images are bound by memory traffic, not by multiply-adds.
The fitted coefficients live in
``generation/cost_model.json`` and drive ``plan --estimate`` and the scheduler simulation.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jahs_gym.space import all_fidelities, sample_configs

COST_MODEL_PATH = Path(__file__).with_name("cost_model.json")


@dataclass(frozen=True)
class CostModel:
    """Seconds per image as ``a + b * MFLOPs + c * MElems``, for training and for evaluation, plus an epoch's
    fixed overhead (one torch thread, batch 256)."""

    train: tuple[float, float, float]  # seconds per training image: a + b * MFLOPs + c * MElems
    evaluate: tuple[float, float, float]  # seconds per evaluated image
    epoch_overhead_s: float = 0.05

    def seconds(self, mflops: float, melems: float, n_train: int, n_eval: int, epochs: int) -> float:
        """Predicted core-seconds of one task.

        Args:
            mflops: The network's MFLOPs for one image (:func:`cost_features`).
            melems: Its output elements of every layer for one image, in millions.
            n_train: Training images per epoch.
            n_eval: Evaluated images per epoch (validation plus test).
            epochs: Epochs trained.

        Returns:
            Seconds to train and evaluate the task on one core.
        """
        tr = self.train[0] + self.train[1] * mflops + self.train[2] * melems
        ev = self.evaluate[0] + self.evaluate[1] * mflops + self.evaluate[2] * melems
        return epochs * (max(tr, 1e-6) * n_train + max(ev, 1e-7) * n_eval + self.epoch_overhead_s)

    @classmethod
    def load(cls, path: Path | None = None) -> CostModel:
        """The cost model :func:`measure` wrote.

        Args:
            path: Its JSON file (default: ``generation/cost_model.json``).

        Returns:
            The model.

        Raises:
            FileNotFoundError: The file is missing; the message names the command that writes it.
        """
        path = COST_MODEL_PATH if path is None else path
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; measure it with `python -m generation costmodel`")
        d = json.loads(path.read_text())
        return cls(tuple(d["train"]), tuple(d["evaluate"]), d.get("epoch_overhead_s", 0.05))


def cost_features(config, n: int, w: int, px: int, channels: int = 1) -> tuple[float, float]:  # noqa: ANN001
    """The cost features of a network (built on the CPU, measured with tiny forward passes).

    Args:
        config (jahs_gym.space.Config): The config.
        n: Cells per stage.
        w: Channels of the first stage.
        px: Image side in pixels.
        channels: Input channels.

    Returns:
        ``(MFLOPs, MElems)`` for one image.
    """
    from generation.network import JAHSNetwork, count_melems, count_mflops

    net = JAHSNetwork(config, n, w, channels)
    return count_mflops(net, channels, px), count_melems(net, channels, px)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares on relative error, coefficients >= 0."""
    wts = 1.0 / y
    a = x * wts[:, None]
    coef, *_ = np.linalg.lstsq(a, y * wts, rcond=None)
    coef = np.maximum(coef, 0.0)
    return tuple(float(c) for c in coef)


def measure(task: str = "fashion_mnist", configs_per_fidelity: int = 3, n_images: int = 768, seed: int = 0,
            out: Path | None = None) -> CostModel:
    """Measure this machine: train random configs one epoch at every (N, W, Resolution) and fit the model.

    Args:
        task: The dataset to measure on.
        configs_per_fidelity: Random configs trained per fidelity.
        n_images: Training (and validation) images per measurement.
        seed: Seed of the sampled configs.
        out: Where to write the JSON (default: ``generation/cost_model.json``).

    Returns:
        The fitted model (also written to ``out`` with its samples and relative errors).
    """
    import torch
    from tqdm import tqdm

    from generation.datasets import TaskData
    from generation.train import TaskSpec, train_task
    from jahs_gym.protocol import Protocol

    torch.set_num_threads(1)
    proto = Protocol(task, n_train=n_images, n_valid=n_images, n_test=10, max_epochs=1)
    data = TaskData(proto)
    configs = sample_configs(27 * configs_per_fidelity, seed)
    feats_t, ys_t, ys_e = [], [], []
    jobs = [(f, configs[i * configs_per_fidelity + j]) for i, f in enumerate(all_fidelities())
            for j in range(configs_per_fidelity)]
    train_task(TaskSpec("warmup", configs[0], 1, 4, 0.25, 0), data)  # warm caches
    for (n, w, r), cfg in tqdm(jobs, desc="cost model"):
        row = train_task(TaskSpec("cost", cfg, n, w, r, 0), data)[0]
        feats_t.append([1.0, *cost_features(cfg, n, w, proto.pixels(r), data.channels)])
        ys_t.append(row["train_duration"] / n_images)
        ys_e.append((row["valid_duration"] + row["test_duration"]) / (n_images + 10))
    x = np.array(feats_t)
    model = CostModel(_fit(x, np.array(ys_t)), _fit(x, np.array(ys_e)))
    pred = np.array([model.train[0] + model.train[1] * f[1] + model.train[2] * f[2] for f in feats_t])
    rel = np.abs(pred / np.array(ys_t) - 1)
    out = COST_MODEL_PATH if out is None else out
    out.write_text(json.dumps({
        "train": model.train, "evaluate": model.evaluate, "epoch_overhead_s": model.epoch_overhead_s,
        "formula": "seconds per image = a + b * MFLOPs + c * MElems (one torch thread, batch 256)",
        "task": task, "n_measurements": len(jobs), "median_rel_error_train": float(np.median(rel)),
        "max_rel_error_train": float(rel.max()), "machine": platform.processor() or platform.machine(),
        "measured": time.strftime("%Y-%m-%d"),
        "samples": [{"N": j[0][0], "W": j[0][1], "Resolution": j[0][2], "MFLOPs": f[1], "MElems": f[2],
                     "train_s_per_img": y}
                    for j, f, y in zip(jobs, feats_t, ys_t)],
    }, indent=1))
    print(f"cost model: train {model.train}, eval {model.evaluate}; median relative error "
          f"{np.median(rel):.1%}, max {rel.max():.1%}; written to {out}")
    return model
