"""Deterministic task lists: configs x fidelities x seeds, with a measured cost per task.

Every (N, W, Resolution) combination gets at least ``min_per_fidelity`` configurations; the rest are
spread with weights proportional to ``cost ** -cheap_bias`` so cheap fidelities are sampled more. A
``repeat_share`` of the tasks is trained again with a second seed (for the noise model).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from generation.checks import NON_NEGATIVE, POSITIVE, Limit
from generation.costmodel import CostModel
from generation.planfile import PLAN_FORMAT, Plan, PlanError, PlannedTask, plan_target  # noqa: F401
from jahs_gym.protocol import Protocol
from jahs_gym.space import Config, Fidelity, all_fidelities, fidelity_id, sample_configs, task_id

# what the numbers of a plan may be: make_plan, add_seeds, plan_from_table and the command line check these
TASKS = POSITIVE
SEED = NON_NEGATIVE
MIN_PER_FIDELITY = NON_NEGATIVE
REPEAT_SHARE = Limit(float, 0, 1, hi_open=True)
CHEAP_BIAS = Limit(float, -10, 10)  # weights cost ** -cheap_bias stay finite and positive
ADDED_SEED = Limit(int, 1)  # seed 0 is every run's first seed
SPLIT_SEED = NON_NEGATIVE
# (train, test) images of each task's official splits as generation.datasets reads them (colorectal_histology:
# its 5,000 tiles less the 20% test share load_colorectal_histology holds out); a plan must fit in them
DATASET_SIZES: dict[str, tuple[int, int]] = {"fashion_mnist": (60_000, 10_000), "mnist": (60_000, 10_000),
                                             "cifar10": (50_000, 10_000), "colorectal_histology": (4_000, 1_000)}


def check_protocol(protocol: Protocol) -> Protocol:
    """Refuse a protocol that a run could not use: a negative split seed, or more images than the task has.

    Args:
        protocol: The protocol to check.

    Returns:
        ``protocol`` itself.

    Raises:
        PlanError: A ``split_seed`` that is not an integer >= 0, ``n_valid`` not below the task's training
            images, or ``n_train`` or ``n_test`` above what is left.
    """
    SPLIT_SEED.check("split_seed", protocol.split_seed, PlanError)
    train, test = DATASET_SIZES[protocol.task]
    if protocol.n_valid >= train:
        raise PlanError(f"n_valid={protocol.n_valid}: allowed: fewer than the {train} training images of "
                        f"{protocol.task}")
    left = train - protocol.n_valid
    if protocol.n_train is not None and protocol.n_train > left:
        raise PlanError(f"n_train={protocol.n_train}: allowed: at most {left} ({protocol.task} has {train} "
                        f"training images, n_valid={protocol.n_valid} of them validate)")
    if protocol.n_test is not None and protocol.n_test > test:
        raise PlanError(f"n_test={protocol.n_test}: allowed: at most {test}, the test images of {protocol.task}")
    return protocol




# the orders in which ``python -m generation run`` can work through a plan (see generation.run.order_tasks)
ORDERS: tuple[str, ...] = ("longest", "interleaved", "coverage", "cheapest")


def parse_fidelities(text: str | None) -> list[tuple[int, int, float]]:
    """Parse the ``--fidelities`` option.

    Args:
        text: Space-separated N,W,Resolution triples, such as ``"1,4,0.25 3,8,0.5"``; None or empty: all 27.

    Returns:
        The (N, W, Resolution) triples, in the order given.

    Raises:
        PlanError: A part that is not three numbers, or a fidelity outside the space.
    """
    if not text:
        return all_fidelities()
    out = []
    for part in text.split():
        try:
            n, w, r = part.split(",")
            f = Fidelity(int(n), int(w), float(r))
        except ValueError as e:
            raise PlanError(f"fidelity {part!r} is refused: {e}; write N,W,Resolution triples such as 3,8,0.5") from e
        out.append((f.N, f.W, f.Resolution))
    return out


def fidelity_costs(protocol: Protocol, fidelities: list[tuple[int, int, float]],
                   cost_model: CostModel | None = None) -> np.ndarray:
    """Estimated seconds of one task at each fidelity, from a reference cell (2 convs of 6 edges, typical of the
    space): the relative cost that spreads a plan's tasks.

    Args:
        protocol: Image counts (None counts: 50,000 train, 10,000 test), resolution and epochs of the runs.
        fidelities: (N, W, Resolution) triples.
        cost_model: The cost model (None: :meth:`CostModel.load`).

    Returns:
        The seconds, one per fidelity, in order.
    """
    from generation.costmodel import cost_features
    from jahs_gym.protocol import CHANNELS

    cm = cost_model or CostModel.load()
    n_eval = protocol.n_valid + (protocol.n_test or 10_000)
    n_train = protocol.n_train or 50_000
    ref = Config(2, 3, 0, 4, 0, 2)
    return np.array([cm.seconds(*cost_features(ref, n, w, protocol.pixels(r), CHANNELS[protocol.task]), n_train,
                                n_eval, protocol.max_epochs) for n, w, r in fidelities])


def _costed_tasks(jobs: list[tuple[Config, tuple[int, int, float], int]], protocol: Protocol, cm: CostModel,
                  progress: bool) -> list[PlannedTask]:
    """(config, (N, W, Resolution), seed) jobs -> planned tasks with their MFLOPs and estimated seconds."""
    from generation.costmodel import cost_features
    from jahs_gym.protocol import CHANNELS

    n_eval = protocol.n_valid + (protocol.n_test or 10_000)
    n_train = protocol.n_train or 50_000
    it = jobs
    if progress:
        from tqdm import tqdm
        it = tqdm(jobs, desc="costing tasks")
    tasks = []
    cache: dict[tuple, tuple[float, float]] = {}
    for cfg, (n, w, r), s in it:
        key = (cfg.config_id, n, w, r)
        if key not in cache:
            cache[key] = cost_features(cfg, n, w, protocol.pixels(r), CHANNELS[protocol.task])
        mf, me = cache[key]
        tasks.append(PlannedTask(task_id(cfg, n, w, r, s), cfg, n, w, r, s, mf,
                                 cm.seconds(mf, me, n_train, n_eval, protocol.max_epochs)))
    return tasks


def make_plan(protocol: Protocol, n_tasks: int, seed: int = 0, min_per_fidelity: int = 20,
              repeat_share: float = 0.1, cheap_bias: float = 0.5,
              fidelities: list[tuple[int, int, float]] | None = None,
              cost_model: CostModel | None = None, progress: bool = True) -> Plan:
    """Sample a plan of about ``n_tasks`` tasks (first seeds plus repeats).

    Args:
        protocol: The runs' protocol (:func:`check_protocol`).
        n_tasks: Tasks in all: ``round(n_tasks / (1 + repeat_share))`` seed-0 tasks, then their repeats.
        seed: Seed of the draw (configs, fidelities, repeats).
        min_per_fidelity: Seed-0 configs each fidelity gets at least.
        repeat_share: Share of the seed-0 tasks trained again with seed 1.
        cheap_bias: The other tasks go to fidelities with weights ``cost ** -cheap_bias``.
        fidelities: (N, W, Resolution) triples (None: all 27).
        cost_model: The cost model (None: :meth:`CostModel.load`).
        progress: Show a progress bar while the tasks are costed.

    Returns:
        The plan: the seed-0 tasks, then the repeats.

    Raises:
        PlanError: A number outside its limit, a protocol :func:`check_protocol` refuses, or too few tasks to
            give ``min_per_fidelity`` configs to every fidelity.
    """
    fids = fidelities or all_fidelities()
    TASKS.check("n_tasks", n_tasks, PlanError)
    SEED.check("seed", seed, PlanError)
    MIN_PER_FIDELITY.check("min_per_fidelity", min_per_fidelity, PlanError)
    REPEAT_SHARE.check("repeat_share", repeat_share, PlanError)
    CHEAP_BIAS.check("cheap_bias", cheap_bias, PlanError)
    check_protocol(protocol)
    n_first = max(1, int(round(n_tasks / (1 + repeat_share))))
    if n_first < min_per_fidelity * len(fids):
        raise PlanError(f"{n_tasks} tasks cannot give {min_per_fidelity} configs to each of {len(fids)} fidelities "
                        f"(needs {min_per_fidelity * len(fids)} first-seed tasks)")
    cm = cost_model or CostModel.load()
    rng = np.random.default_rng(seed)
    weights = fidelity_costs(protocol, fids, cm) ** -cheap_bias
    extra = n_first - min_per_fidelity * len(fids)
    counts = np.full(len(fids), min_per_fidelity) + np.floor(weights / weights.sum() * extra).astype(int)
    counts[np.argsort(-weights)[: n_first - counts.sum()]] += 1
    assignment = np.repeat(np.arange(len(fids)), counts)
    rng.shuffle(assignment)
    configs = sample_configs(n_first, rng)
    n_rep = int(round(n_first * repeat_share))
    rep_idx = np.sort(rng.choice(n_first, size=n_rep, replace=False)) if n_rep else np.array([], int)
    jobs = [(configs[i], fids[assignment[i]], 0) for i in range(n_first)]
    jobs += [(configs[i], fids[assignment[i]], 1) for i in rep_idx]
    tasks = _costed_tasks(jobs, protocol, cm, progress)
    options = {"n_tasks": n_tasks, "min_per_fidelity": min_per_fidelity, "repeat_share": repeat_share,
               "cheap_bias": cheap_bias, "fidelities": [list(f) for f in fids],
               "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return Plan(protocol, tuple(tasks), seed, options)


def add_seeds(plan: Plan, n_tasks: int, seed: int = 1) -> tuple[Plan, list[PlannedTask]]:
    """The plan with ``n_tasks`` more tasks that train first-seed (config, fidelity) runs again with ``seed``,
    cheapest first, and the new tasks. Labels that average several seeds are less noisy (issue: surrogate
    fidelity); the protocol and the split stay the plan's, so the new shards merge with the old ones.

    Args:
        plan: The plan to extend.
        n_tasks: At most this many new tasks.
        seed: The new tasks' seed (1 or more).

    Returns:
        ``(extended plan, new tasks)``; the extension is recorded in the options' ``extensions``.

    Raises:
        PlanError: ``n_tasks`` or ``seed`` outside its limit, or every first-seed task already has ``seed``.
    """
    TASKS.check("n_tasks", n_tasks, PlanError)
    ADDED_SEED.check("seed", seed, PlanError)
    have = {(t.config.config_id, t.N, t.W, t.Resolution) for t in plan.tasks if t.seed == seed}
    candidates = sorted((t for t in plan.tasks if t.seed == 0 and (t.config.config_id, t.N, t.W, t.Resolution)
                         not in have), key=lambda t: (t.est_seconds, t.task_id))
    if not candidates:
        raise PlanError(f"every first-seed task of the plan already has seed {seed}")
    new = [PlannedTask(task_id(t.config, t.N, t.W, t.Resolution, seed), t.config, t.N, t.W,
                       t.Resolution, seed, t.mflops, t.est_seconds) for t in candidates[:n_tasks]]
    options = {**plan.options, "extensions": [*plan.options.get("extensions", []), {
        "added": len(new), "seed": seed, "order": "cheapest first-seed runs first",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}]}
    return Plan(plan.protocol, plan.tasks + tuple(new), plan.seed, options), new


def read_protocol(path: Path) -> Protocol:
    """The protocol of a bundle (its folder or manifest.json) or of a run (its folder or plan.json).

    Args:
        path: A bundle or run folder (a folder with both: its manifest.json), or the JSON file itself.

    Returns:
        The protocol.

    Raises:
        PlanError: A folder with neither file, a missing file, or a file without a readable protocol.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / f for f in ("manifest.json", "plan.json") if (path / f).exists()]
        if not found:
            raise PlanError(f"{path} holds neither manifest.json (a bundle) nor plan.json (a run)")
        path = found[0]
    try:
        return Protocol.from_dict(json.loads(path.read_text())["protocol"])
    except FileNotFoundError as e:
        raise PlanError(f"{path} does not exist") from e
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise PlanError(f"{path}: no readable protocol ({type(e).__name__}: {e})") from e


def table_runs(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per complete ``seed`` run of a learning-curve table: config keys, config_id, N, W, Resolution.

    Complete: epochs 1..E without a gap and every row ``ok`` (E: the table's last epoch), so a diverged,
    failed or unfinished run is never chosen.

    Args:
        table: A learning-curve table (``python -m generation merge``).
        seed: The seed whose runs count.

    Returns:
        The runs, sorted by (config_id, N, W, Resolution).

    Raises:
        PlanError: The table lacks a column this needs.
    """
    from jahs_gym.space import CONFIG_KEYS

    need = ["config_id", "seed", "status", "epoch", "N", "W", "Resolution", *CONFIG_KEYS]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise PlanError(f"the table lacks column(s) {missing}")
    df = table[table["seed"] == seed]
    keys = ["config_id", "N", "W", "Resolution"]
    g = df.groupby(keys, sort=True)
    stats = pd.DataFrame({"n": g["epoch"].size(), "lo": g["epoch"].min(), "hi": g["epoch"].max(),
                          "ok": g["status"].agg(lambda s: bool((s == "ok").all()))})
    last = int(table["epoch"].max()) if len(table) else 0
    good = stats[(stats["n"] == last) & (stats["lo"] == 1) & (stats["hi"] == last) & stats["ok"]].index
    runs = df.drop_duplicates(keys).set_index(keys).loc[good].reset_index()
    return runs[["config_id", *CONFIG_KEYS, "N", "W", "Resolution"]].reset_index(drop=True)


def plan_from_table(table: pd.DataFrame, protocol: Protocol, n_configs: int, seed: int = 0,
                    fidelities: list[tuple[int, int, float]] | None = None, cost_model: CostModel | None = None,
                    progress: bool = True, source: str | None = None) -> Plan:
    """Train again, under ``protocol`` (another ``max_epochs``, say), ``n_configs`` (config, fidelity) runs that
    ``table`` trained completely with seed 0, spread as evenly as the table allows over ``fidelities``.

    Every fidelity gets ``n_configs // F`` runs, the remainder going to the cheapest; a fidelity with fewer
    complete runs gives its share to the others, cheapest first. Within a fidelity the runs are drawn with
    ``seed`` from the candidates sorted by config_id, so the plan depends only on the table's runs and the
    arguments. The tasks keep seed 0: the same initialisation and batch order as the table's runs, so the
    first epochs differ from them only by the protocol (the cosine schedule's length for ``max_epochs``).

    Args:
        table: The learning-curve table (:func:`table_runs`).
        protocol: The new runs' protocol (:func:`check_protocol`).
        n_configs: Runs to train again.
        seed: Seed of the draw within each fidelity.
        fidelities: (N, W, Resolution) triples (None: all 27).
        cost_model: The cost model (None: :meth:`CostModel.load`).
        progress: Show a progress bar while the tasks are costed.
        source: The table's path, recorded in the options as ``from_table``.

    Returns:
        The plan.

    Raises:
        PlanError: A number outside its limit, a refused protocol, a table without the columns or without
            ``n_configs`` complete seed-0 runs at ``fidelities``, or a row whose config_id is not its config's.
    """
    from jahs_gym.space import CONFIG_KEYS

    TASKS.check("n_configs", n_configs, PlanError)
    SEED.check("seed", seed, PlanError)
    check_protocol(protocol)
    fids = fidelities or all_fidelities()
    runs = table_runs(table, 0)
    cands = []
    for n, w, r in fids:
        sel = runs[(runs["N"] == n) & (runs["W"] == w) & np.isclose(runs["Resolution"], r)]
        cands.append(sel.sort_values("config_id", kind="stable").reset_index(drop=True))
    avail = np.array([len(c) for c in cands])
    if avail.sum() < n_configs:
        raise PlanError(f"the table has {int(avail.sum())} complete seed-0 runs at the {len(fids)} fidelities; "
                        f"{n_configs} were asked for")
    cm = cost_model or CostModel.load()
    by_cost = np.argsort(fidelity_costs(protocol, fids, cm), kind="stable")
    counts = np.zeros(len(fids), int)
    while counts.sum() < n_configs:  # round-robin, cheapest first, skipping exhausted fidelities
        for i in by_cost:
            if counts.sum() < n_configs and counts[i] < avail[i]:
                counts[i] += 1
    rng = np.random.default_rng(seed)
    jobs = []
    for (n, w, r), c, k in zip(fids, cands, counts):
        for j in np.sort(rng.choice(len(c), size=int(k), replace=False)) if k else []:
            row = c.iloc[int(j)]
            cfg = Config.from_dict({key: row[key].item() if hasattr(row[key], "item") else row[key]
                                    for key in CONFIG_KEYS})
            if cfg.config_id != row["config_id"]:
                raise PlanError(f"table row config_id {row['config_id']} does not match its config keys "
                                f"({cfg.config_id}); is it a jahs-gym table?")
            jobs.append((cfg, (n, w, r), 0))
    tasks = _costed_tasks(jobs, protocol, cm, progress)
    options = {"from_table": source, "n_configs": n_configs, "min_per_fidelity": int(counts.min()),
               "repeat_share": 0.0, "fidelities": [list(f) for f in fids],
               "per_fidelity": {fidelity_id(*f): int(k) for f, k in zip(fids, counts)},
               "selection": "complete seed-0 runs of the table, even over fidelities (remainder to the cheapest), "
                            "drawn with the plan seed among candidates sorted by config_id",
               "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return Plan(protocol, tuple(tasks), seed, options)


def summary(plan: Plan, cores: int = 2) -> str:
    """What a plan trains and costs, for the command line.

    Args:
        plan: The plan.
        cores: Cores the wall-time estimate assumes.

    Returns:
        Three lines: tasks and protocol, estimated compute, first-seed configs per fidelity.
    """
    from collections import Counter

    per_fid = Counter(fidelity_id(t.N, t.W, t.Resolution) for t in plan.tasks if t.seed == 0)
    secs = np.array([t.est_seconds for t in plan.tasks])
    lines = [f"plan: {len(plan.tasks)} tasks ({sum(t.seed > 0 for t in plan.tasks)} repeated seeds), "
             f"protocol {plan.protocol.as_dict()}",
             f"estimated compute: {plan.core_hours:.1f} core-hours = {plan.core_hours / cores:.1f} h on {cores} cores; "
             f"task seconds: median {np.median(secs):.0f}, max {secs.max():.0f}",
             "configs per fidelity (first seed): " + ", ".join(f"{k}:{v}" for k, v in sorted(per_fid.items()))]
    return "\n".join(lines)
