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
# where an evaluation's numbers come from: the surrogate anywhere in the space, or only the table's trained runs
# (arms) with their measured curves ("table") or the surrogate's predictions for them ("surrogate_arms"), or real
# training of whatever the action asks for ("live", jahs_gym.live)
BACKENDS = ("surrogate", "table", "surrogate_arms", "live")
ARM_BACKENDS = ("table", "surrogate_arms")


def epoch_grid(max_epochs: int, n: int) -> np.ndarray:
    """The epochs an action can ask for.

    Args:
        max_epochs: The task's max epochs.
        n: How many choices (the env's ``n_epochs``).

    Returns:
        ``n`` int64 epochs: every epoch when ``n >= max_epochs``, else log-spaced from 1 to ``max_epochs``.
    """
    if n >= max_epochs:
        return np.round(np.linspace(1, max_epochs, n)).astype(np.int64)
    return np.round(np.geomspace(1, max_epochs, n)).astype(np.int64)


def resolve_tasks(task: str) -> list[str]:
    """The task names an env draws from.

    Args:
        task: A task name, a bundle folder, or ``"random"``.

    Returns:
        ``[task]``, or every installed task for ``"random"``.

    Raises:
        ValueError: ``task`` is not a string.
        KeyError: ``"random"`` with no bundle installed.
    """
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
                 bundle: Bundle | None = None, backend: str = "surrogate", live: dict | None = None) -> None:
        """Load the bundle and precompute what a step needs.

        Args:
            name: A task name or bundle folder.
            n_epochs: Size of the epoch grid.
            budget: Simulated seconds per episode (None: the manifest's default).
            metrics: The metric order of the env's other tasks (None: this bundle's); they must match.
            bundle: The loaded bundle, when the caller has it (pickles carry it).
            backend: One of ``BACKENDS``.
            live: ``backend="live"``: ``save_dir`` and ``seed`` of the live runs.

        Raises:
            ValueError: An unknown backend, a bundle lacking a metric JAHS-v0 needs, metrics that differ from the
                env's other tasks, or a budget that is not a positive, finite number.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not allowed; allowed: {list(BACKENDS)}")
        self._args = (name, n_epochs, budget, metrics)
        self.backend, self._live_args = backend, live
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
        self.arms = Arms(self, backend) if backend in ARM_BACKENDS else None
        self.live = None
        if backend == "live":
            from jahs_gym.live import LiveRuns

            self.live = LiveRuns(self.name, dict(man.protocol.raw), **(live or {}))
        # the surrogate's own optimum test accuracy, or the best noise-free test accuracy of the arms
        self.regret_reference = man.regret_reference if self.arms is None else self.arms.reference
        self.noise_std = noise_std(bundle, metrics)
        # observation: (f(y) - f(lo)) / (f(hi) - f(lo)) clipped to [0, 1], with f the transform the surrogate was
        # fitted in (so f(y) is the forest's raw output) and lo, hi the range of the bundle's table
        bounds, fitted = bundle.bounds(), bundle.transforms()
        self.obs_cols = [self.col[m] for m in OBS_METRICS]
        self.obs_lo = [tf.forward_scalar(fitted[m], bounds[m][0]) for m in OBS_METRICS]
        span = [tf.forward_scalar(fitted[m], bounds[m][1]) - lo for m, lo in zip(OBS_METRICS, self.obs_lo)]
        self.obs_span = [s if s > 0 else 1.0 for s in span]
        self.scaler = self.forest.scaler(self.obs_cols, self.obs_lo, self.obs_span)

    def __reduce__(self) -> tuple:
        """Pickles carry the arguments and the (verified) bundle; the forest is rebuilt once per process."""
        return (EnvTask, (*self._args, self.bundle, self.backend, self._live_args))

    def __deepcopy__(self, memo: dict) -> EnvTask:
        return self  # read-only

    def train_live(self, cols: list, epoch: int) -> tuple[list[float], list[float]]:
        """``backend="live"``: one evaluation, the last measured row of its run (trained now unless the live folder
        holds it). A diverged run's NaN losses stay NaN in the metrics and sit at the top of the table's range in
        the fitted space (the observation).

        Args:
            cols: The 13 decoded action columns (config and N, W, Resolution).
            epoch: The epoch asked for.

        Returns:
            ``(metrics, fitted-space metrics)``, each in :attr:`metrics` order.
        """
        from jahs_gym.space import ACTIVATIONS, Config, Fidelity

        cfg = Config(*cols[:6], Activation=ACTIVATIONS[cols[6]], TrivialAugment=bool(cols[7]),
                     LearningRate=float(cols[8]), WeightDecay=float(cols[9]))
        row = self.live.curve(cfg, Fidelity(int(cols[10]), int(cols[11]), float(cols[12]), int(epoch))).iloc[-1]
        y = [float(row[m]) for m in self.metrics]
        fitted, bounds = self.bundle.transforms(), self.bundle.bounds()
        raw = [tf.forward_scalar(fitted[m], v if v == v else bounds[m][1]) for m, v in zip(self.metrics, y)]
        return y, raw

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """The 8 observation entries of many evaluations (:attr:`scaler`; the single env's row predictor applies
        the same scaler inside its kernel call).

        Args:
            raw: (rows, metrics) raw (fitted-space) outputs.

        Returns:
            (rows, 8), clipped to [0, 1].
        """
        return self.scaler(raw)


def noise_std(bundle: Bundle, metrics: tuple[str, ...]) -> list[float] | None:
    """The bundle's seed-noise model.

    Args:
        bundle: The bundle.
        metrics: The metric order.

    Returns:
        One std per metric in its fitted space (0 where it has none), or None when the bundle has no noise model
        in the fitted space.
    """
    man = bundle.manifest
    if not man.noise or man.noise_space != "fitted":
        return None
    return [float(man.noise.get(m, 0.0)) for m in metrics]


class Arms:
    """The arm backends' numbers for every (run, epoch) of a task's table: the runs' 13 decoded action columns,
    noise-free metrics (``clean``, ``clean_fitted``: (runs, epochs, metrics)) and, for ``backend="table"``,
    every seed's measured curve (``curves``, ``fitted``: (runs, seeds, epochs, metrics)).

    "table": noise-free is the seeds' mean in the fitted space (a run with one seed: its measured curve);
    "surrogate_arms": the surrogate's predictions at the runs' configs and fidelities. Timings are at the
    training machine's median speed where the bundle corrected them, as the surrogate predicts them.
    """

    def __init__(self, task: EnvTask, backend: str) -> None:
        """Read the table's runs and their numbers.

        Args:
            task: The env's task (its bundle ships the table).
            backend: ``"table"`` or ``"surrogate_arms"``.

        Raises:
            ValueError: The table has no run trained to the last epoch.
        """
        from jahs_gym.space import encode_arrays
        from jahs_gym.table import run_table

        bundle = task.bundle
        runs = run_table(bundle, task.metrics, "corrected" if bundle.speed_corrected else "measured")
        full = runs.last_epoch >= runs.max_epochs  # a diverged run has no curve to the end: not an arm
        if not full.any():
            raise ValueError(f"backend={backend!r}: the {task.name} table has no run trained to the last epoch")
        keep = np.flatnonzero(full)
        self.backend, self.run_index = backend, keep  # arm i is run keep[i] of the RunTable
        self.columns = [c[keep] for c in runs.columns]
        self.rows = [list(r) for r in zip(*(c.tolist() for c in self.columns))]
        self.n_seeds = runs.n_seeds[keep]
        e = runs.max_epochs
        if backend == "table":
            self.curves, self.fitted = runs.curves[keep], runs.fitted[keep]
            self.clean, self.clean_fitted = runs.mean[keep], runs.mean_fitted[keep]
        else:
            n = len(keep)
            c = [np.repeat(col, e) for col in self.columns]
            x = encode_arrays(np.stack(c[:6], axis=1), *c[6:13], np.tile(np.arange(1, e + 1), n))
            raw = task.forest.predict_raw(x)
            self.clean = task.forest.finish(raw.copy()).reshape(n, e, -1)
            self.clean_fitted = raw.reshape(n, e, -1)
            self.curves = self.fitted = None
        self.reference = float(np.nanmax(self.clean[..., task.col["test_acc"]]))
        for a in (self.clean, self.clean_fitted):
            a.flags.writeable = False

    def __len__(self) -> int:
        return len(self.run_index)
