"""``python -m generation {costmodel,plan,plan-seeds,plan-protocol,run,merge,fit}``: make a JAHS-Gym benchmark
on CPUs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _tolerance(spec: str) -> float | dict[str, float]:
    from generation.fit import parse_tolerance

    try:
        return parse_tolerance(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _non_negative(spec: str) -> int:
    try:
        v = int(spec)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is negative; allowed: 0 or more")
    return v


def _parser() -> argparse.ArgumentParser:
    from generation.fit import PARSIMONY_TOLERANCE
    from generation.plan import ORDERS

    p = argparse.ArgumentParser(prog="python -m generation", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("costmodel", help="measure seconds per image on this machine (writes cost_model.json)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--task", default="fashion_mnist", help="dataset to measure on")
    c.add_argument("--configs-per-fidelity", type=int, default=3, help="random configs trained per (N, W, R)")
    c.add_argument("--images", type=int, default=768, help="training images per measurement (one epoch)")
    c.add_argument("--out", type=Path, default=None, help="where to write (default: generation/cost_model.json)")

    pl = sub.add_parser("plan", help="write a deterministic task list RUN_DIR/plan.json",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pl.add_argument("--task", default="fashion_mnist",
                    help="dataset: fashion_mnist, mnist, cifar10 or colorectal_histology")
    pl.add_argument("--tasks", type=int, default=2000, help="number of tasks, repeated seeds included")
    pl.add_argument("--n-train", type=int, default=None, help="training images (default: all)")
    pl.add_argument("--n-valid", type=int, default=10_000, help="validation images carved from the train split")
    pl.add_argument("--n-test", type=int, default=None, help="test images from the official test split (default: all)")
    pl.add_argument("--max-epochs", type=int, default=200, help="epochs per task (the cosine schedule's length)")
    pl.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test subsets")
    pl.add_argument("--seed", type=int, default=0, help="seed of the sampled configs and fidelities")
    pl.add_argument("--min-per-fidelity", type=int, default=20, help="configs per (N, W, Resolution), at least")
    pl.add_argument("--repeat-share", type=float, default=0.1, help="share of tasks trained with a second seed")
    pl.add_argument("--cheap-bias", type=float, default=0.5,
                    help="extra tasks are spread with weight cost**-cheap_bias (0: uniform)")
    pl.add_argument("--fidelities", default=None,
                    help='restrict to these N,W,Resolution triples, e.g. "1,4,0.25 3,8,0.5" (default: all 27)')
    pl.add_argument("--cores", type=int, default=2, help="cores assumed by the printed wall-time estimate")
    pl.add_argument("--estimate", action="store_true", help="print the estimate only; write nothing")
    pl.add_argument("--out", type=Path, help="run folder to write plan.json into")

    ps = sub.add_parser("plan-seeds", help="add tasks that train a plan's first-seed runs again with another seed",
                        description="Append to RUN_DIR/plan.json up to --tasks tasks that train first-seed "
                                    "(config, fidelity) runs again with --seed, cheapest first: labels that "
                                    "average seeds are less noisy. Then `run RUN_DIR --order cheapest`.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ps.add_argument("run_dir", type=Path, help="folder holding plan.json")
    ps.add_argument("--tasks", type=int, default=600, help="how many tasks to add")
    ps.add_argument("--seed", type=int, default=1, help="the seed of the added runs (>= 1)")
    ps.add_argument("--cores", type=int, default=2, help="cores assumed by the printed wall-time estimate")
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
    pp.add_argument("--configs", type=int, default=100, help="(config, fidelity) runs to train again")
    pp.add_argument("--seed", type=int, default=0, help="seed that draws the runs within each fidelity")
    pp.add_argument("--fidelities", default=None,
                    help='restrict to these N,W,Resolution triples, e.g. "1,4,0.25 3,8,0.5" (default: all 27)')
    pp.add_argument("--cores", type=int, default=2, help="cores assumed by the printed wall-time estimate")
    pp.add_argument("--estimate", action="store_true", help="print the estimate only; write nothing")
    pp.add_argument("--out", type=Path, help="run folder to write plan.json into")

    r = sub.add_parser("run", help="train a plan's tasks (under mpiexec: every rank); rerun to resume",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("run_dir", type=Path, help="folder holding plan.json")
    r.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    r.add_argument("--time-limit", type=float, default=None,
                   help="stop claiming new tasks after this many seconds (for batch-system wall times)")
    r.add_argument("--max-tasks", type=int, default=None, help="run at most this many of the pending tasks")
    r.add_argument("--data-root", default=None, help="folder of a local cifar10/colorectal_histology copy")
    r.add_argument("--order", default="longest", choices=list(ORDERS),
                   help="longest: longest tasks first (best makespan); interleaved: every prefix of the run has "
                        "the plan's mix of fidelities, cheapest first (for runs spread over several sessions); "
                        "coverage: first what brings every fidelity to the plan's min_per_fidelity configs, then "
                        "interleaved")

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
    f.add_argument("--folds", type=int, default=5, help="grouped K-fold (by config) for held-out quality")
    f.add_argument("--trials", type=int, default=6, help="XGBoost hyperparameter candidates tried per metric")
    f.add_argument("--run-dir", type=Path, default=None,
                   help="the run folder: its plan.json's protocol goes into the manifest")
    f.add_argument("--ship-table", action="store_true", help="copy the table into the bundle (kind='table')")
    f.add_argument("--parsimony", type=_tolerance, default=str(PARSIMONY_TOLERANCE),
                   help="keep the smallest forest within this share of the best validation RMSE (0: the best-RMSE "
                        "forest; more trees, slower queries: benchmarks/parsimony_tradeoff.py measures both). "
                        f"Per metric: 'cpu_runtime=0,runtime=0' (the others keep {PARSIMONY_TOLERANCE}) or "
                        "'0.02,cpu_runtime=0'")
    f.add_argument("--speed-window", type=float, default=20.0,
                   help="minutes either side of a task whose other tasks' held-out residuals give its machine "
                        "speed factor (cpu_runtime, runtime, latency labels are divided by it); 0: no correction")
    f.add_argument("--optimum-rows", type=_non_negative, default=1_000_000,
                   help="random rows of the search for the surrogate's optimum (JAHS-v0's regret reference; "
                        "then hill climbing from the best 100: generation/optimum.py)")
    f.add_argument("--labels", choices=("seed_mean", "single"), default="seed_mean",
                   help="seed_mean: fit one row per (config, fidelity, epoch), the mean of its seeds in the fitted "
                        "space (less label noise); single: every run's row. Quality is reported against both")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "costmodel":
        from generation.costmodel import measure
        measure(args.task, args.configs_per_fidelity, args.images, out=args.out)
    elif args.cmd == "plan-seeds":
        from generation.plan import Plan, PlanError, add_seeds, summary
        try:
            plan, new = add_seeds(Plan.load(args.run_dir), args.tasks, args.seed)
        except PlanError as e:
            print(f"plan refused: {e}", file=sys.stderr)
            return 2
        hours = sum(t.est_seconds for t in new) / 3600
        print(f"adding {len(new)} seed-{args.seed} tasks: {hours:.1f} core-hours by the cost model = "
              f"{hours / max(args.cores, 1):.1f} h on {args.cores} cores\n" + summary(plan, args.cores))
        if not args.estimate:
            print(f"wrote {plan.save(args.run_dir)}")
    elif args.cmd == "plan":
        from generation.plan import PlanError, make_plan, parse_fidelities, summary
        from jahs_gym.protocol import Protocol
        try:
            proto = Protocol(args.task, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
                             max_epochs=args.max_epochs, split_seed=args.split_seed)
            plan = make_plan(proto, args.tasks, args.seed, args.min_per_fidelity, args.repeat_share,
                             args.cheap_bias, parse_fidelities(args.fidelities))
        except (PlanError, ValueError) as e:
            print(f"plan refused: {e}", file=sys.stderr)
            return 2
        print(summary(plan, args.cores))
        if not args.estimate:
            if args.out is None:
                print("plan: --out RUN_DIR is required unless --estimate is given", file=sys.stderr)
                return 2
            print(f"wrote {plan.save(args.out)}")
    elif args.cmd == "plan-protocol":
        import dataclasses

        import pandas as pd

        from generation.plan import PlanError, parse_fidelities, plan_from_table, read_protocol, summary
        try:
            if not args.table.exists():
                raise PlanError(f"{args.table} does not exist")
            proto = dataclasses.replace(read_protocol(args.protocol_of), max_epochs=args.max_epochs)
            plan = plan_from_table(pd.read_parquet(args.table), proto, args.configs, args.seed,
                                   parse_fidelities(args.fidelities), source=str(args.table))
        except (PlanError, ValueError) as e:
            print(f"plan refused: {e}", file=sys.stderr)
            return 2
        print(summary(plan, args.cores))
        if not args.estimate:
            if args.out is None:
                print("plan-protocol: --out RUN_DIR is required unless --estimate is given", file=sys.stderr)
                return 2
            print(f"wrote {plan.save(args.out)}")
    elif args.cmd == "run":
        from generation.plan import PlanError
        from generation.run import run
        try:
            run(args.run_dir, args.threads, args.time_limit, args.max_tasks, args.data_root, order=args.order)
        except PlanError as e:
            print(f"run refused: {e}", file=sys.stderr)
            return 2
    elif args.cmd == "merge":
        from generation.merge import merge
        _, rep = merge(args.run_dirs, args.out)
        print(rep.text())
        print(f"wrote {args.out}")
    elif args.cmd == "date-shards":
        from generation.merge import write_shard_dates
        path, n, missing = write_shard_dates(args.run_dir)
        print(f"wrote {path}: {n} shard(s) dated by git" + (f"; {missing} undated shard(s) that git does not know "
                                                           "(uncommitted, or a shallow clone)" if missing else ""))
    elif args.cmd == "fit":
        import json

        from generation.fit import fit_bundle
        from generation.merge import compute_summary
        protocol = None
        if args.run_dir is not None:
            protocol = json.loads((args.run_dir / "plan.json").read_text())["protocol"]
        import pandas as pd
        compute = compute_summary(pd.read_parquet(args.table), [args.run_dir] if args.run_dir else None)
        m = fit_bundle(args.table, args.out, folds=args.folds, trials=args.trials, compute=compute,
                       ship_table=args.ship_table, protocol=protocol,
                       speed_window_min=args.speed_window if args.speed_window > 0 else None,
                       tolerance=args.parsimony, optimum_rows=args.optimum_rows, labels=args.labels)
        from generation.datacard import write_datacard
        from jahs_gym.bundle import read_manifest, write_manifest
        n_plan = len(json.loads((args.run_dir / "plan.json").read_text())["tasks"]) if args.run_dir else None
        write_datacard(args.out, args.table, n_plan)
        write_manifest(args.out, read_manifest(args.out, verify_files=False))  # re-hash with the data card
        print(f"wrote {args.out} (with DATA_CARD.md); held-out quality:")
        for k, v in m["metrics"].items():
            q, s = v["quality"], v["quality_single_run"]
            print(f"  {k:<12} R2 {q['r2']:.3f}  tau {q['kendall_tau']:.3f}  MAE {q['mae']:.4g}  (single runs: R2 "
                  f"{s['r2']:.3f}  tau {s['kendall_tau']:.3f})  trees {v['n_trees']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
