"""``python -m generation {costmodel,plan,plan-seeds,plan-protocol,run,merge,date-shards,fit}``: make a JAHS-Gym
benchmark on CPUs."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

# the first word of a subcommand's one-line refusal ("plan refused: --cores 0: allowed: a positive integer")
REFUSAL = {"plan-seeds": "plan", "plan-protocol": "plan"}
PROG = "python -m generation"


class _Parser(argparse.ArgumentParser):
    """A bad argument ends in one line, ``<command> refused: --option value: allowed: ...``, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        cmd = self.prog if self.prog == PROG else self.prog.split()[-1]
        message = re.sub(r"^argument (\S+?): ", r"\1 ", message)
        self.exit(2, f"{REFUSAL.get(cmd, cmd)} refused: {message}\n")


def _tolerance(spec: str) -> float | dict[str, float]:
    from generation.fit import parse_tolerance

    try:
        return parse_tolerance(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser() -> argparse.ArgumentParser:
    from generation.checks import NON_NEGATIVE, POSITIVE, Limit
    from generation.fit import CANDIDATES, FOLDS, PARSIMONY_TOLERANCE, TRIALS
    from generation.plan import ADDED_SEED, CHEAP_BIAS, MIN_PER_FIDELITY, ORDERS, REPEAT_SHARE, SEED, TASKS
    from generation.run import MAX_TASKS, THREADS, TIME_LIMIT

    cores = POSITIVE
    p = _Parser(prog=PROG, description=__doc__,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    c = sub.add_parser("costmodel", help="measure seconds per image on this machine (writes cost_model.json)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--task", default="fashion_mnist", help="dataset to measure on")
    c.add_argument("--configs-per-fidelity", type=POSITIVE, default=3, help="random configs trained per (N, W, R)")
    c.add_argument("--images", type=int, default=768, help="training images per measurement (one epoch)")
    c.add_argument("--out", type=Path, default=None, help="where to write (default: generation/cost_model.json)")

    pl = sub.add_parser("plan", help="write a deterministic task list RUN_DIR/plan.json",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pl.add_argument("--task", default="fashion_mnist",
                    help="dataset: fashion_mnist, mnist, cifar10 or colorectal_histology")
    pl.add_argument("--tasks", type=TASKS, default=2000, help="number of tasks, repeated seeds included")
    pl.add_argument("--n-train", type=int, default=None, help="training images (default: all)")
    pl.add_argument("--n-valid", type=int, default=10_000, help="validation images carved from the train split")
    pl.add_argument("--n-test", type=int, default=None, help="test images from the official test split (default: all)")
    pl.add_argument("--max-epochs", type=int, default=200, help="epochs per task (the cosine schedule's length)")
    pl.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test subsets")
    pl.add_argument("--seed", type=SEED, default=0, help="seed of the sampled configs and fidelities")
    pl.add_argument("--min-per-fidelity", type=MIN_PER_FIDELITY, default=20,
                    help="configs per (N, W, Resolution), at least")
    pl.add_argument("--repeat-share", type=REPEAT_SHARE, default=0.1, help="share of tasks trained with a second seed")
    pl.add_argument("--cheap-bias", type=CHEAP_BIAS, default=0.5,
                    help="extra tasks are spread with weight cost**-cheap_bias (0: uniform)")
    pl.add_argument("--fidelities", default=None,
                    help='restrict to these N,W,Resolution triples, e.g. "1,4,0.25 3,8,0.5" (default: all 27)')
    pl.add_argument("--cores", type=cores, default=2, help="cores assumed by the printed wall-time estimate")
    pl.add_argument("--estimate", action="store_true", help="print the estimate only; write nothing")
    pl.add_argument("--out", type=Path, help="run folder to write plan.json into")

    ps = sub.add_parser("plan-seeds", help="add tasks that train a plan's first-seed runs again with another seed",
                        description="Append to RUN_DIR/plan.json up to --tasks tasks that train first-seed "
                                    "(config, fidelity) runs again with --seed, cheapest first: labels that "
                                    "average seeds are less noisy. Then `run RUN_DIR --order cheapest`.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ps.add_argument("run_dir", type=Path, help="folder holding plan.json")
    ps.add_argument("--tasks", type=TASKS, default=600, help="how many tasks to add")
    ps.add_argument("--seed", type=ADDED_SEED, default=1, help="the seed of the added runs (>= 1)")
    ps.add_argument("--cores", type=cores, default=2, help="cores assumed by the printed wall-time estimate")
    ps.add_argument("--estimate", action="store_true", help="print what would be added; write nothing")

    pp = sub.add_parser("plan-protocol", help="plan (config, fidelity) runs of a trained table again under another "
                                              "protocol (e.g. more epochs)",
                        description="Write RUN_DIR/plan.json with --configs complete seed-0 runs of TABLE, spread "
                                    "evenly over the fidelities (remainder to the cheapest), trained again under "
                                    "--protocol-of's protocol with --max-epochs (the cosine schedule's length). "
                                    "Deterministic: the same table and options give the same plan. The tasks keep "
                                    "seed 0, so they start from the same weights and batches as the table's runs.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pp.add_argument("table", type=Path, help="merged table.parquet whose runs are trained again")
    pp.add_argument("--protocol-of", type=Path, required=True,
                    help="bundle folder or manifest.json, or run folder or plan.json, whose protocol (images, split "
                         "seed) the new plan keeps")
    pp.add_argument("--max-epochs", type=int, required=True, help="epochs per task under the new protocol")
    pp.add_argument("--configs", type=TASKS, default=100, help="(config, fidelity) runs to train again")
    pp.add_argument("--seed", type=SEED, default=0, help="seed that draws the runs within each fidelity")
    pp.add_argument("--fidelities", default=None,
                    help='restrict to these N,W,Resolution triples, e.g. "1,4,0.25 3,8,0.5" (default: all 27)')
    pp.add_argument("--cores", type=cores, default=2, help="cores assumed by the printed wall-time estimate")
    pp.add_argument("--estimate", action="store_true", help="print the estimate only; write nothing")
    pp.add_argument("--out", type=Path, help="run folder to write plan.json into")

    r = sub.add_parser("run", help="train a plan's tasks (under mpiexec: every rank); rerun to resume",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("run_dir", type=Path, help="folder holding plan.json")
    r.add_argument("--threads", type=THREADS, default=1, help="torch threads per rank")
    r.add_argument("--time-limit", type=TIME_LIMIT, default=None,
                   help="stop claiming new tasks after this many seconds (for batch-system wall times)")
    r.add_argument("--max-tasks", type=MAX_TASKS, default=None, help="run at most this many of the pending tasks")
    r.add_argument("--data-root", default=None, help="folder of a local cifar10/colorectal_histology copy")
    r.add_argument("--order", default="longest", choices=list(ORDERS),
                   help="longest: longest tasks first (best makespan); interleaved: every prefix of the run has "
                        "the plan's mix of fidelities, cheapest first (for runs spread over several sessions); "
                        "coverage: first what brings every fidelity to the plan's min_per_fidelity configs, then "
                        "interleaved; cheapest: cheapest tasks first (for plan-seeds additions)")

    m = sub.add_parser("merge", help="validate shards and write one table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m.add_argument("run_dirs", type=Path, nargs="+", help="run folder(s) with shards/")
    m.add_argument("-o", "--out", type=Path, required=True, help="table.parquet to write")

    d = sub.add_parser("date-shards", help="date shards from before epoch_started by their git commit",
                       description="Write RUN_DIR/shard_dates.json: for every shard without epoch_started, the "
                                   "Unix time of the git commit that added it (needs the repository's full "
                                   "history). merge puts it into the table's shard_committed column, and fit "
                                   "uses it to correct runtime labels for the machine's drifting speed.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("run_dir", type=Path, help="run folder with shards/ inside a git work tree")

    f = sub.add_parser("fit", help="fit a surrogate bundle on a merged table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("table", type=Path, help="merged table.parquet")
    f.add_argument("-o", "--out", type=Path, required=True, help="bundle folder to write")
    f.add_argument("--folds", type=FOLDS, default=5, help="grouped K-fold (by config) for held-out quality")
    f.add_argument("--trials", type=TRIALS, default=len(CANDIDATES),
                   help="XGBoost hyperparameter candidates tried per metric")
    f.add_argument("--run-dir", type=Path, default=None,
                   help="the run folder: its plan.json's protocol goes into the manifest")
    f.add_argument("--ship-table", action="store_true", help="copy the table into the bundle (kind='table')")
    f.add_argument("--parsimony", type=_tolerance, default=str(PARSIMONY_TOLERANCE),
                   help="keep the smallest forest within this share of the best validation RMSE (0: the best-RMSE "
                        "forest; more trees, slower queries: benchmarks/parsimony_tradeoff.py measures both). "
                        f"Per metric: 'cpu_runtime=0,runtime=0' (the others keep {PARSIMONY_TOLERANCE}) or "
                        "'0.02,cpu_runtime=0'")
    f.add_argument("--speed-window", type=Limit(float, 0), default=20.0,
                   help="minutes either side of a task whose other tasks' held-out residuals give its machine "
                        "speed factor (cpu_runtime, runtime, latency labels are divided by it); 0: no correction")
    f.add_argument("--optimum-rows", type=NON_NEGATIVE, default=1_000_000,
                   help="random rows of the search for the surrogate's optimum (JAHS-v0's regret reference; "
                        "then hill climbing from the best 1,000: generation/optimum.py)")
    f.add_argument("--labels", choices=("seed_mean", "single"), default="seed_mean",
                   help="seed_mean: fit one row per (config, fidelity, epoch), the mean of its seeds in the fitted "
                        "space (less label noise); single: every run's row. Quality is reported against both")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a refused input prints ``<command> refused: <why>`` to stderr.

    Args:
        argv: The arguments (None: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 when the input is refused (argparse exits with 2 itself for a bad option).
    """
    args = _parser().parse_args(argv)
    from generation.merge import MergeError
    from generation.plan import PlanError

    try:
        return _command(args)
    except (PlanError, MergeError, ValueError) as e:
        if getattr(e, "echo", True):  # the MPI ranks other than rank 0 stay quiet about a locked folder
            print(f"{REFUSAL.get(args.cmd, args.cmd)} refused: {e}", file=sys.stderr)
        return 2


def _need(path: Path, what: str, is_dir: bool = False) -> Path:
    """``path`` when it is an existing file (folder with ``is_dir``); else a ValueError saying what is needed."""
    if not (path.is_dir() if is_dir else path.is_file()):
        raise ValueError(f"{path} {'is not' if path.exists() else 'does not exist'}: allowed: {what}")
    return path


def _target(out: Path | None, estimate: bool) -> None:
    """Refuse a missing or unusable --out before any work (generation.plan.plan_target)."""
    from generation.plan import plan_target

    if estimate:
        return
    if out is None:
        raise ValueError("--out RUN_DIR is required unless --estimate is given")
    plan_target(out)


def _write_plan(plan: object, out: Path | None, estimate: bool, extends: bool = False) -> None:
    if estimate:
        return
    path = out / "plan.json"
    before = path.read_bytes() if path.is_file() else None
    plan.save(out, extends=extends)
    print(f"{path} already holds this plan; left as it is" if before == path.read_bytes() and before is not None
          else f"wrote {path}")


def _command(args: argparse.Namespace) -> int:
    if args.cmd == "costmodel":
        from generation.costmodel import measure
        measure(args.task, args.configs_per_fidelity, args.images, out=args.out)
    elif args.cmd == "plan-seeds":
        from generation.plan import Plan, add_seeds, summary
        plan, new = add_seeds(Plan.load(args.run_dir), args.tasks, args.seed)
        hours = sum(t.est_seconds for t in new) / 3600
        print(f"adding {len(new)} seed-{args.seed} tasks: {hours:.1f} core-hours by the cost model = "
              f"{hours / args.cores:.1f} h on {args.cores} cores\n" + summary(plan, args.cores))
        _write_plan(plan, args.run_dir, args.estimate, extends=True)
    elif args.cmd == "plan":
        from generation.plan import make_plan, parse_fidelities, summary
        from jahs_gym.protocol import Protocol
        _target(args.out, args.estimate)
        proto = Protocol(args.task, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
                         max_epochs=args.max_epochs, split_seed=args.split_seed)
        plan = make_plan(proto, args.tasks, args.seed, args.min_per_fidelity, args.repeat_share,
                         args.cheap_bias, parse_fidelities(args.fidelities))
        print(summary(plan, args.cores))
        _write_plan(plan, args.out, args.estimate)
    elif args.cmd == "plan-protocol":
        import dataclasses

        import pandas as pd

        from generation.plan import parse_fidelities, plan_from_table, read_protocol, summary
        _need(args.table, "a merged table.parquet")
        _target(args.out, args.estimate)
        proto = dataclasses.replace(read_protocol(args.protocol_of), max_epochs=args.max_epochs)
        plan = plan_from_table(pd.read_parquet(args.table), proto, args.configs, args.seed,
                               parse_fidelities(args.fidelities), source=str(args.table))
        print(summary(plan, args.cores))
        _write_plan(plan, args.out, args.estimate)
    elif args.cmd == "run":
        from generation.run import run
        run(args.run_dir, args.threads, args.time_limit, args.max_tasks, args.data_root, order=args.order)
    elif args.cmd == "merge":
        from generation.merge import merge
        if args.out.is_dir():
            raise ValueError(f"-o {args.out} is a folder: allowed: the table.parquet file to write")
        _, rep = merge(args.run_dirs, args.out)
        print(rep.text())
        print(f"wrote {args.out}")
    elif args.cmd == "date-shards":
        from generation.merge import write_shard_dates
        _need(args.run_dir / "shards", "a run folder with shards/", is_dir=True)
        path, n, missing = write_shard_dates(args.run_dir)
        print(f"wrote {path}: {n} shard(s) dated by git" + (f"; {missing} undated shard(s) that git does not know "
                                                           "(uncommitted, or a shallow clone)" if missing else ""))
    elif args.cmd == "fit":
        _fit(args)
    return 0


def _fit(args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from generation.datacard import write_datacard
    from generation.fit import fit_bundle
    from generation.merge import compute_summary
    from jahs_gym.bundle import read_manifest, write_manifest

    _need(args.table, "a merged table.parquet (python -m generation merge RUN_DIR -o TABLE)")
    plan = None
    if args.run_dir is not None:
        plan = json.loads(_need(args.run_dir / "plan.json", "a run folder holding plan.json").read_text())
    compute = compute_summary(pd.read_parquet(args.table), [args.run_dir] if args.run_dir else None)
    m = fit_bundle(args.table, args.out, folds=args.folds, trials=args.trials, compute=compute,
                   ship_table=args.ship_table, protocol=plan["protocol"] if plan else None,
                   speed_window_min=args.speed_window if args.speed_window > 0 else None,
                   tolerance=args.parsimony, optimum_rows=args.optimum_rows, labels=args.labels)
    write_datacard(args.out, args.table, len(plan["tasks"]) if plan else None)
    write_manifest(args.out, read_manifest(args.out, verify_files=False))  # re-hash with the data card
    print(f"wrote {args.out} (with DATA_CARD.md); held-out quality:")
    for k, v in m["metrics"].items():
        q, s = v["quality"], v["quality_single_run"]
        print(f"  {k:<12} R2 {q['r2']:.3f}  tau {q['kendall_tau']:.3f}  MAE {q['mae']:.4g}  (single runs: R2 "
              f"{s['r2']:.3f}  tau {s['kendall_tau']:.3f})  trees {v['n_trees']}")


if __name__ == "__main__":
    sys.exit(main())
