"""A task as the environment needs it: predictor, epoch grid, budget, regret reference, noise, observation scale."""

from __future__ import annotations

import math

import numpy as np

from jahs_gym import transforms as tf
from jahs_gym.bundle import Bundle, installed_tasks, load_bundle

# what the observation shows of an evaluation (test accuracy never enters it), then the episode's state
OBS_METRICS = ("valid_acc", "train_acc", "valid_loss", "train_loss", "cpu_runtime", "latency", "size_MB", "FLOPS")
OBS_STATE = ("incumbent_valid_acc", "budget_used", "steps_used", "step_cost")
OBS_KEYS = (*OBS_METRICS, *OBS_STATE)
SLOT = {k: i for i, k in enumerate(OBS_KEYS)}
NEEDED_METRICS = (*OBS_METRICS, "test_acc")


def epoch_grid(max_epochs: int, n: int) -> np.ndarray:
    """n epoch choices: every epoch when n >= max_epochs, else log-spaced from 1 to max_epochs."""
    if n >= max_epochs:
        return np.round(np.linspace(1, max_epochs, n)).astype(np.int64)
    return np.round(np.geomspace(1, max_epochs, n)).astype(np.int64)


def resolve_tasks(task: str) -> list[str]:
    """The task names an env draws from: ``[task]``, or every installed task for ``task="random"``."""
    if not isinstance(task, str):
        raise ValueError(f"task={task!r} must be a task name, a bundle folder or 'random'")
    if task == "random":
        names = sorted(installed_tasks())
        if not names:
            raise KeyError("task='random' found no installed bundles; see `jahs-gym tasks`")
        return names
    return [task]


class EnvTask:
    """One bundle prepared for JAHS-v0; read-only after construction (shared by copies of an env)."""

    def __init__(self, name: str, n_epochs: int, budget: float | None, metrics: tuple[str, ...] | None,
                 bundle: Bundle | None = None) -> None:
        self._args = (name, n_epochs, budget, metrics)
        bundle = load_bundle(name) if bundle is None else bundle
        self.name, self.bundle = bundle.task if (name not in installed_tasks()) else name, bundle
        missing = [m for m in NEEDED_METRICS if m not in bundle.metrics]
        if missing:
            raise ValueError(f"task {name!r}: its bundle lacks metric(s) {missing} that JAHS-v0 needs")
        metrics = tuple(bundle.metrics) if metrics is None else metrics
        if set(metrics) != set(bundle.metrics):
            raise ValueError(f"task {name!r} predicts {sorted(bundle.metrics)}, another task of this env "
                             f"{sorted(metrics)}: task='random' needs bundles with the same metrics")
        self.metrics = metrics
        self.col = {m: i for i, m in enumerate(metrics)}
        self.forest = bundle.predictor(metrics)
        self.max_epochs = bundle.max_epochs
        self.epoch_grid = epoch_grid(self.max_epochs, n_epochs)
        self.epoch_grid_list = self.epoch_grid.tolist()
        man = bundle.manifest
        b = man.default_budget_s if budget is None else budget
        if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not (
                math.isfinite(b) and b > 0):
            raise ValueError(f"budget={budget!r} must be a positive, finite number of simulated seconds")
        self.budget = float(b)
        self.regret_reference = man.regret_reference  # the surrogate's own optimum test accuracy
        self.noise_std = noise_std(bundle, metrics)
        # observation: (f(y) - f(lo)) / (f(hi) - f(lo)) clipped to [0, 1], with f the transform the surrogate was
        # fitted in (so f(y) is the forest's raw output) and lo, hi the range of the bundle's table
        bounds, fitted = bundle.bounds(), bundle.transforms()
        self.obs_cols = [self.col[m] for m in OBS_METRICS]
        self.obs_lo = [tf.forward_scalar(fitted[m], bounds[m][0]) for m in OBS_METRICS]
        span = [tf.forward_scalar(fitted[m], bounds[m][1]) - lo for m, lo in zip(OBS_METRICS, self.obs_lo)]
        self.obs_span = [s if s > 0 else 1.0 for s in span]
        self._obs_scalar = list(zip(self.obs_cols, self.obs_lo, self.obs_span))
        self._obs_lo_arr, self._obs_span_arr = np.asarray(self.obs_lo), np.asarray(self.obs_span)

    def __reduce__(self) -> tuple:
        """Pickles carry the arguments and the (verified) bundle; the forest is rebuilt once per process."""
        return (EnvTask, (*self._args, self.bundle))

    def __deepcopy__(self, memo: dict) -> EnvTask:
        return self  # read-only

    def normalise_one(self, raw: list[float]) -> list[float]:
        """The 8 observation entries of one evaluation from the forest's raw (fitted-space) outputs."""
        out = []
        for c, lo, span in self._obs_scalar:
            v = (raw[c] - lo) / span
            out.append(0.0 if v < 0.0 else 1.0 if v > 1.0 else v)
        return out

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """The 8 observation entries of rows of raw (fitted-space) outputs, (rows, metrics) -> (rows, 8)."""
        return np.clip((raw[:, self.obs_cols] - self._obs_lo_arr) / self._obs_span_arr, 0.0, 1.0)


def noise_std(bundle: Bundle, metrics: tuple[str, ...]) -> list[float] | None:
    """Seed-noise std per metric in its transform space, or None when the bundle has no usable noise model."""
    man = bundle.manifest
    if not man.noise or man.noise_space != "fitted":
        return None
    return [float(man.noise.get(m, 0.0)) for m in metrics]
