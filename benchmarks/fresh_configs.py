"""How well the shipped surrogate predicts configs it never saw, trained under its own protocol.

The held-out quality in a bundle's manifest comes from grouped K-fold inside the training table. This benchmark
trains K *new* configs (a plan seed other than the bundle's, so none of them is in its table) under the shipped
bundle's protocol (its images, split seed and max epochs, read from its manifest), spread over the 27 fidelities,
and scores ``jahs_gym.Benchmark(task)`` on them: per metric R2 and Kendall tau (``generation.fit.quality``) over
every epoch's row and at the final epoch, next to the manifest's held-out figures; valid_acc's Kendall tau per
fidelity and per N, W and Resolution; and a check that no fresh config_id is in the bundle's table.

    python benchmarks/fresh_configs.py plan --estimate      # core-hours by generation's cost model; writes nothing
    python benchmarks/fresh_configs.py plan                 # writes data/runs/fashion_mnist_fresh/plan.json
    python benchmarks/fresh_configs.py run                  # prints the mpiexec command (add --now to run it)
    python benchmarks/fresh_configs.py score                # merges what is trained so far and scores it

``run`` is resumable: rerunning it skips finished tasks and continues a partial one from its checkpoint.
``score`` works on a partial run and says how many of the planned tasks it scored.

Timings (runtime, cpu_runtime, latency): the surrogate predicts them at the training machine's median speed;
the fresh runs ran on this machine at another time, so their scale may differ (Kendall tau is unaffected).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = 40
DEFAULT_SEED = 7


def _quality_fns() -> tuple[Callable[..., dict[str, float]], Callable[..., float]]:
    """``(quality, kendall_tau)`` of the fitting code (generation.fit, or generation.labels where they moved)."""
    try:
        from generation.fit import kendall_tau, quality
    except ImportError:
        from generation.labels import kendall_tau, quality
    return quality, kendall_tau


def default_run_dir(task: str) -> Path:
    return ROOT / "data" / "runs" / f"{task}_fresh"


def bundle_plan_seed(task: str) -> tuple[int, str]:
    """The plan seed of the run the shipped bundle was trained from (data/runs/TASK/plan.json), and where it came
    from; 0 (``generation plan``'s default) when that run folder is not here."""
    path = ROOT / "data" / "runs" / task / "plan.json"
    if path.exists():
        return int(json.loads(path.read_text())["seed"]), str(path.relative_to(ROOT))
    return 0, "generation plan's default (no data/runs/TASK/plan.json here)"


def calibration(task: str) -> dict[str, float] | None:
    """How the bundle's own run compares with its cost model: measured wall core-hours (the table's runtime at
    each task's last epoch) against the plan's estimate for the same tasks; None without data/runs/TASK."""
    from jahs_gym.bundle import load_bundle

    path, table = ROOT / "data" / "runs" / task / "plan.json", load_bundle(task).table_path()
    if not path.exists() or table is None:
        return None
    est = pd.Series({t["task_id"]: t["est_seconds"] for t in json.loads(path.read_text())["tasks"]})
    df = pd.read_parquet(table, columns=["task_id", "epoch", "runtime"])
    last = df.sort_values("epoch").groupby("task_id")["runtime"].last()
    last = last[last.index.isin(est.index)]
    if last.empty:
        return None
    measured, estimated = float(last.sum()) / 3600, float(est[last.index].sum()) / 3600
    return {"tasks": len(last), "measured_h": measured, "estimated_h": estimated, "ratio": measured / estimated}


def table_config_ids(task: str) -> set[str]:
    """config_ids of the bundle's shipped table (empty when it ships none)."""
    from jahs_gym.bundle import load_bundle

    path = load_bundle(task).table_path()
    if path is None:
        return set()
    return set(pd.read_parquet(path, columns=["config_id"])["config_id"].astype(str))


def make_fresh_plan(task: str, n_tasks: int, seed: int, cheap_bias: float, min_per_fidelity: int,
                    fidelities: str | None, progress: bool = True) -> Any:
    """The plan: ``n_tasks`` new configs under the bundle's protocol, no repeated seeds."""
    from generation.plan import PlanError, make_plan, parse_fidelities, read_protocol
    from jahs_gym.bundle import load_bundle

    own, where = bundle_plan_seed(task)
    if seed == own:
        raise PlanError(f"--seed {seed} is the bundle's plan seed ({where}): its configs are in the table; "
                        "choose another seed")
    protocol = read_protocol(load_bundle(task).folder)
    return make_plan(protocol, n_tasks, seed=seed, min_per_fidelity=min_per_fidelity, repeat_share=0.0,
                     cheap_bias=cheap_bias, fidelities=parse_fidelities(fidelities), progress=progress)


def shown(path: Path) -> str:
    """``path`` relative to the working directory where it is below it (for printed commands)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_command(run_dir: Path, ranks: int, order: str, time_limit: float | None, python: str = "python") -> list[str]:
    """The command that trains (or resumes) ``run_dir``'s plan."""
    cmd = [python, "-m", "generation", "run", shown(run_dir), "--order", order]
    if time_limit is not None:
        cmd += ["--time-limit", f"{time_limit:g}"]
    return ["mpiexec", "-n", str(ranks), *cmd] if ranks > 1 else cmd


def score(bench: Any, df: pd.DataFrame, table_ids: set[str] | None = None) -> dict[str, Any]:
    """Score ``bench`` (a surrogate ``jahs_gym.Benchmark``) on the rows of a merged table ``df``.

    Returns per metric ``{"all": quality, "final": quality}`` (final: rows at the protocol's max epoch), valid_acc's
    Kendall tau per fidelity (over every epoch's row, and across configs at the final epoch) and per N, W,
    Resolution at the final epoch, the counts, and the fresh config_ids that the bundle's table holds.
    """
    from jahs_gym.space import CONFIG_KEYS

    quality, kendall_tau = _quality_fns()
    df = df[df["epoch"] <= bench.max_epochs].reset_index(drop=True)
    pred = bench.query(df[[*CONFIG_KEYS, "N", "W", "Resolution", "epoch"]])
    final = (df["epoch"] == bench.max_epochs).to_numpy()
    metrics = [m for m in bench.metrics if m in df.columns]
    out: dict[str, Any] = {"tasks": int(df["task_id"].nunique()), "configs": int(df["config_id"].nunique()),
                           "rows": len(df), "final_rows": int(final.sum()), "max_epochs": bench.max_epochs,
                           "metrics": {}, "held_out": {}}
    for m in metrics:
        y, p = df[m].to_numpy(float), pred[m].to_numpy(float)
        ok = np.isfinite(y) & np.isfinite(p)
        out["metrics"][m] = {"all": quality(y[ok], p[ok]) if ok.sum() > 1 else None,
                             "final": quality(y[ok & final], p[ok & final]) if (ok & final).sum() > 1 else None}
        q = bench.bundle.manifest.metrics[m].quality
        out["held_out"][m] = {k: q.get(k) for k in ("r2", "kendall_tau")}
    if "valid_acc" in metrics:
        y, p = df["valid_acc"].to_numpy(float), pred["valid_acc"].to_numpy(float)
        ok = np.isfinite(y) & np.isfinite(p)
        by_fid = {}
        for fid in sorted(df["fidelity_id"].unique()):
            sel = ok & (df["fidelity_id"] == fid).to_numpy()
            fin = sel & final
            by_fid[fid] = {"configs": int(df.loc[sel, "config_id"].nunique()),
                           "tau_all_epochs": kendall_tau(y[sel], p[sel]) if sel.sum() > 1 else float("nan"),
                           "tau_final": kendall_tau(y[fin], p[fin]) if fin.sum() > 1 else float("nan")}
        out["valid_acc_by_fidelity"] = by_fid
        marg = {}
        for col in ("N", "W", "Resolution"):
            for v in sorted(df[col].unique()):
                fin = ok & final & (df[col] == v).to_numpy()
                marg[f"{col}={v:g}"] = {"configs": int(fin.sum()),
                                        "tau_final": kendall_tau(y[fin], p[fin]) if fin.sum() > 1 else float("nan")}
        out["valid_acc_by_level"] = marg
    if table_ids is not None:
        out["in_bundle_table"] = sorted(set(df["config_id"].astype(str)) & table_ids)
    return out


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def report(res: dict[str, Any], planned: int | None = None) -> str:
    """The score as text."""
    of = f" of {planned} planned" if planned is not None else ""
    lines = [f"scored {res['tasks']} trained task(s){of}: {res['configs']} config(s), {res['rows']} rows "
             f"({res['final_rows']} at the final epoch {res['max_epochs']})"]
    if "in_bundle_table" in res:
        inn = res["in_bundle_table"]
        lines.append(f"fresh configs in the bundle's table: {len(inn)}" + (f" ({inn[:5]})" if inn else " (all new)"))
    lines += ["", f"{'metric':<12} {'R2 all':>7} {'tau all':>7} {'R2 fin':>7} {'tau fin':>7}   "
                  f"{'held-out R2':>11} {'tau':>6}"]
    for m, q in res["metrics"].items():
        a, f, h = q["all"] or {}, q["final"] or {}, res["held_out"][m]
        lines.append(f"{m:<12} {_f(a.get('r2')):>7} {_f(a.get('kendall_tau')):>7} {_f(f.get('r2')):>7} "
                     f"{_f(f.get('kendall_tau')):>7}   {_f(h.get('r2')):>11} {_f(h.get('kendall_tau')):>6}")
    if "valid_acc_by_fidelity" in res:
        lines += ["", "valid_acc Kendall tau per fidelity (all epochs: configs x epochs; final: across configs)",
                  f"{'fidelity':<14} {'configs':>7} {'all':>6} {'final':>6}"]
        for fid, d in res["valid_acc_by_fidelity"].items():
            lines.append(f"{fid:<14} {d['configs']:>7} {_f(d['tau_all_epochs']):>6} {_f(d['tau_final']):>6}")
        lines += ["", "valid_acc Kendall tau at the final epoch, per level: " + ", ".join(
            f"{k} {_f(d['tau_final'])} (n={d['configs']})" for k, d in res["valid_acc_by_level"].items())]
    lines += ["", "timings are predicted at the training machine's median speed; these runs' machine and time "
                  "differ, so judge runtime/cpu_runtime/latency by tau rather than R2"]
    return "\n".join(lines)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None and False (the help says what those mean)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    from generation.plan import ORDERS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--task", default="fashion_mnist", help="the shipped bundle to test (its protocol and table)")
    common.add_argument("--run-dir", type=Path, default=None,
                        help="run folder of the fresh configs (default: data/runs/TASK_fresh)")
    fmt = _Help
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("plan", parents=[common], formatter_class=fmt,
                        help="write RUN_DIR/plan.json: new configs under the bundle's protocol")
    pl.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help="number of fresh (config, fidelity) tasks")
    pl.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="plan seed of the fresh configs; the bundle's own plan seed is refused")
    pl.add_argument("--cheap-bias", type=float, default=0.5,
                    help="tasks beyond one per fidelity are spread with weight cost**-cheap_bias (0: uniform)")
    pl.add_argument("--min-per-fidelity", type=int, default=1, help="configs per (N, W, Resolution), at least")
    pl.add_argument("--fidelities", default=None,
                    help='restrict to these N,W,Resolution triples, e.g. "1,4,0.25 3,8,0.5" (default: all 27)')
    pl.add_argument("--cores", type=int, default=2, help="cores assumed by the printed wall-time estimate")
    pl.add_argument("--estimate", action="store_true", help="print the cost estimate only; write nothing")
    pl.add_argument("--force", action="store_true", help="overwrite an existing plan.json with other tasks")
    r = sub.add_parser("run", parents=[common], formatter_class=fmt,
                       help="print (or with --now, run) the command that trains the plan; rerun to resume")
    r.add_argument("--ranks", type=int, default=2, help="MPI ranks (1: no mpiexec)")
    r.add_argument("--order", default="interleaved", choices=list(ORDERS),
                   help="task order of `generation run` (interleaved: every prefix covers the fidelities)")
    r.add_argument("--time-limit", type=float, default=None, help="seconds after which ranks claim no new task")
    r.add_argument("--now", action="store_true", help="run the command here, in the foreground")
    s = sub.add_parser("score", parents=[common], formatter_class=fmt,
                       help="merge the trained shards and score the shipped surrogate on them")
    s.add_argument("--json", type=Path, default=None, help="also write the scores to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run_dir = args.run_dir or default_run_dir(args.task)
    from generation.plan import Plan, PlanError, summary

    if args.cmd == "plan":
        try:
            plan = make_fresh_plan(args.task, args.tasks, args.seed, args.cheap_bias, args.min_per_fidelity,
                                   args.fidelities)
        except (PlanError, ValueError) as e:
            print(f"plan refused: {e}", file=sys.stderr)
            return 2
        print(summary(plan, args.cores))
        cal = calibration(args.task)
        if cal:
            print(f"cost model: {plan.core_hours:.2f} core-hours; the bundle's own run took {cal['ratio']:.2f}x its "
                  f"cost-model estimate ({cal['measured_h']:.1f} measured vs {cal['estimated_h']:.1f} estimated "
                  f"core-hours over {cal['tasks']} tasks): expect about {plan.core_hours * cal['ratio']:.2f} "
                  f"core-hours = {plan.core_hours * cal['ratio'] / max(args.cores, 1):.2f} h on {args.cores} cores")
        clash = {t.config.config_id for t in plan.tasks} & table_config_ids(args.task)
        if clash:
            print(f"plan refused: {len(clash)} config(s) of seed {args.seed} are in the bundle's table "
                  f"({sorted(clash)[:3]}); choose another --seed", file=sys.stderr)
            return 2
        print(f"none of the {len(plan.tasks)} fresh configs is in the {args.task} bundle's table")
        if args.estimate:
            return 0
        if (run_dir / "plan.json").exists() and not args.force:
            old = Plan.load(run_dir)
            if [t.task_id for t in old.tasks] != [t.task_id for t in plan.tasks]:
                print(f"plan refused: {shown(run_dir)}/plan.json holds other tasks (seed {old.seed}, {len(old.tasks)} "
                      "tasks); use --force to replace it, or another --run-dir", file=sys.stderr)
                return 2
            print(f"{shown(run_dir)}/plan.json already holds this plan; kept")
            return 0
        print(f"wrote {plan.save(run_dir)}")
    elif args.cmd == "run":
        if not (run_dir / "plan.json").exists():
            print(f"run refused: {run_dir}/plan.json does not exist; make it with `python {Path(__file__).name} "
                  "plan`", file=sys.stderr)
            return 2
        print(shlex.join(run_command(run_dir, args.ranks, args.order, args.time_limit)))
        if args.now:
            return subprocess.run(run_command(run_dir, args.ranks, args.order, args.time_limit,
                                              python=sys.executable)).returncode
    elif args.cmd == "score":
        import jahs_gym
        from generation.merge import merge

        try:
            planned = len(Plan.load(run_dir).tasks)
        except PlanError as e:
            print(f"score refused: {e}", file=sys.stderr)
            return 2
        if not any((run_dir / "shards").glob("*.parquet")):
            print(f"{shown(run_dir)}: 0 of {planned} planned tasks trained; nothing to score yet")
            return 0
        df, rep = merge([run_dir])
        print(f"{shown(run_dir)}: {rep.tasks} of {planned} planned tasks trained; {len(rep.failed)} failed, "
              f"{len(rep.diverged_tasks)} diverged, {len(rep.unfinished)} not yet trained")
        res = score(jahs_gym.Benchmark(args.task), df, table_config_ids(args.task))
        print(report(res, planned))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
