"""How far is the embedded 10-epoch landscape from longer training?

The shipped fashion_mnist table trains every run for the protocol's 10 epochs (cosine schedule over 10 epochs).
This benchmark takes 100 (config, fidelity) runs that the table trained completely with seed 0, about 4 per
fidelity over the 27 (``python -m generation plan-protocol``: even over the fidelities, the remainder to the
cheapest, drawn deterministically), and trains them again for 40 epochs under the same images and split (a
plan whose max_epochs, the cosine schedule's length, is 40) into data/runs/fashion_mnist_e40. The runs keep
seed 0, so they start from the table runs' weights and batches. It then reports, on the runs done so far:

- Kendall tau of the valid_acc ranking: epoch 10 of the 10-epoch protocol (the table) against epoch 40, and
  against epoch 10 of the 40-epoch run (same weights and batches, only the learning-rate schedule differs: the
  schedule effect), and epoch 10 against epoch 40 of the 40-epoch run (the effect of 30 more epochs); over all
  runs and within fidelities (pairs of configs at the same N, W, Resolution);
- the seed-to-seed tau of the 10-epoch table (its seed-0/seed-1 pairs) as the noise reference;
- per-fidelity medians of valid_acc at each, the tau of the 27 fidelities' medians, and what the 10-epoch
  winner scores after 40 epochs.

    python benchmarks/protocol_bias.py plan --estimate   # core-hours (cost model and the table's own runtimes)
    python benchmarks/protocol_bias.py plan              # writes data/runs/fashion_mnist_e40/plan.json
    python benchmarks/protocol_bias.py run               # prints the mpiexec command (add --now to run it)
    python benchmarks/protocol_bias.py report --card protocol_bias.md

``run`` is resumable (rerun it to continue); ``report`` works on partial results and says how many are done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["config_id", "N", "W", "Resolution"]


def _kendall_tau() -> Any:
    try:
        from generation.fit import kendall_tau
    except ImportError:  # moved to generation.labels
        from generation.labels import kendall_tau
    return kendall_tau


def shown(path: Path) -> str:
    """``path`` relative to the working directory where it is below it (for printed commands)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_run_dir(task: str, epochs: int) -> Path:
    return ROOT / "data" / "runs" / f"{task}_e{epochs}"


def bundle_table(task: str) -> tuple[Path, Any]:
    """(the shipped table's path, the bundle's Protocol)."""
    from generation.plan import PlanError, read_protocol
    from jahs_gym.bundle import load_bundle

    b = load_bundle(task)
    path = b.table_path()
    if path is None:
        raise PlanError(f"the {task} bundle ships no table")
    return path, read_protocol(b.folder)


def make_protocol_plan(table: pd.DataFrame, protocol: Any, max_epochs: int, n_configs: int, seed: int,
                       source: str | None, progress: bool = True) -> Any:
    from generation.plan import plan_from_table

    return plan_from_table(table, dataclasses.replace(protocol, max_epochs=max_epochs), n_configs, seed,
                           progress=progress, source=source)


def measured_estimate(plan: Any, table: pd.DataFrame) -> float:
    """Core-hours that the plan's runs took in the table, scaled by the ratio of epochs (the same runs on the same
    machine: a better estimate than the cost model's, which underestimates this machine)."""
    ids = {t.task_id for t in plan.tasks}
    d = table[table["task_id"].isin(ids)]
    last = d.sort_values("epoch").groupby("task_id")[["runtime", "epoch"]].last()
    return float((last["runtime"] / last["epoch"]).sum() * plan.protocol.max_epochs / 3600)


def run_command(run_dir: Path, ranks: int, order: str, time_limit: float | None, python: str = "python") -> list[str]:
    """The command that trains (or resumes) ``run_dir``'s plan."""
    cmd = [python, "-m", "generation", "run", shown(run_dir), "--order", order]
    if time_limit is not None:
        cmd += ["--time-limit", f"{time_limit:g}"]
    return ["mpiexec", "-n", str(ranks), *cmd] if ranks > 1 else cmd


def pair_tau(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, int]:
    """Kendall tau-a of ``a`` against ``b`` over the pairs inside each group (all pairs when ``groups`` is
    None), and the number of pairs. Within fidelities it says whether configs keep their order at a fixed
    (N, W, Resolution), apart from the fidelities' own order."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    g = np.zeros(len(a), int) if groups is None else pd.factorize(np.asarray(groups))[0]
    s = pairs = 0.0
    for k in np.unique(g):
        i = np.flatnonzero(g == k)
        if len(i) < 2:
            continue
        iu = np.triu_indices(len(i), 1)
        da = np.sign(a[i][:, None] - a[i][None, :])[iu]
        db = np.sign(b[i][:, None] - b[i][None, :])[iu]
        s += float((da * db).sum())
        pairs += len(da)
    return (s / pairs if pairs else float("nan")), int(pairs)


def curves(plan: Any, table: pd.DataFrame, long: pd.DataFrame | None, short_epochs: int) -> pd.DataFrame:
    """One row per planned run: its fidelity, valid_acc at epoch ``short_epochs`` of the table ("v10"), at the
    same epoch of the long run ("long_at_short") and at the long run's last epoch ("long"), and its state
    (done, diverged, pending)."""
    from jahs_gym.space import fidelity_id

    long_e = plan.protocol.max_epochs
    rows = pd.DataFrame([{"config_id": t.config.config_id, "N": t.N, "W": t.W, "Resolution": t.Resolution,
                          "fidelity_id": fidelity_id(t.N, t.W, t.Resolution), "task_id": t.task_id}
                         for t in plan.tasks])
    t0 = table[(table["seed"] == 0) & (table["epoch"] == short_epochs)]
    rows["v10"] = rows["task_id"].map(t0.set_index("task_id")["valid_acc"])
    rows["long_at_short"] = np.nan
    rows["long"] = np.nan
    rows["state"] = "pending"
    if long is not None and len(long):
        at = long.set_index(["task_id", "epoch"])["valid_acc"]
        status = long.sort_values("epoch").groupby("task_id")["status"].last()
        last_epoch = long.groupby("task_id")["epoch"].max()
        for i, tid in enumerate(rows["task_id"]):
            if tid not in status.index:
                continue
            rows.loc[i, "long_at_short"] = at.get((tid, short_epochs), np.nan)
            if status[tid] == "ok" and last_epoch[tid] == long_e:
                rows.loc[i, "long"] = at[(tid, long_e)]
                rows.loc[i, "state"] = "done"
            else:
                rows.loc[i, "state"] = str(status[tid])
    return rows


def seed_noise(table: pd.DataFrame, epoch: int) -> dict[str, Any]:
    """Seed-0 against seed-1 valid_acc of the table's repeated runs at ``epoch``: tau over all pairs and within
    fidelities (the noise that any ranking comparison of single runs carries)."""
    d = table[table["epoch"] == epoch]
    wide = d.pivot_table(index=["config_id", "fidelity_id"], columns="seed", values="valid_acc")
    if 0 not in wide.columns or 1 not in wide.columns:
        return {"runs": 0}
    wide = wide[[0, 1]].dropna()
    fid = wide.index.get_level_values("fidelity_id").to_numpy()
    tau_all, _ = pair_tau(wide[0].to_numpy(), wide[1].to_numpy())
    tau_within, pairs = pair_tau(wide[0].to_numpy(), wide[1].to_numpy(), fid)
    return {"runs": len(wide), "tau": tau_all, "tau_within": tau_within, "pairs_within": pairs}


def analyse(rows: pd.DataFrame, short_epochs: int, long_epochs: int,
            noise: dict[str, Any] | None = None) -> dict[str, Any]:
    """The comparison on the runs done so far (see the module docstring)."""
    kt = _kendall_tau()
    d = rows[rows["state"] == "done"].dropna(subset=["v10", "long"])
    per_fid = rows.groupby("fidelity_id").size()
    res: dict[str, Any] = {"planned": len(rows), "done": len(d), "fidelities": len(per_fid),
                           "per_fidelity_planned": [int(per_fid.min()), int(per_fid.max())],
                           "states": rows["state"].value_counts().to_dict(),
                           "short_epochs": short_epochs, "long_epochs": long_epochs, "noise": noise or {}}
    pairs = {"10-epoch protocol @10 vs 40-epoch run @40": ("v10", "long"),
             "10-epoch protocol @10 vs 40-epoch run @10 (schedule)": ("v10", "long_at_short"),
             "40-epoch run @10 vs @40 (more epochs)": ("long_at_short", "long")}
    taus = {}
    for name, (a, b) in pairs.items():
        dd = d.dropna(subset=[a, b])
        name = name.replace("@10", f"@{short_epochs}").replace("@40", f"@{long_epochs}").replace(
            "10-epoch", f"{short_epochs}-epoch").replace("40-epoch", f"{long_epochs}-epoch")
        within, n_pairs = pair_tau(dd[a].to_numpy(), dd[b].to_numpy(), dd["fidelity_id"].to_numpy())
        taus[name] = {"n": len(dd), "tau": kt(dd[a].to_numpy(), dd[b].to_numpy()) if len(dd) > 1 else float("nan"),
                      "tau_within": within, "pairs_within": n_pairs}
    res["tau"] = taus
    med = d.groupby("fidelity_id").agg(n=("v10", "size"), v10=("v10", "median"),
                                       long_at_short=("long_at_short", "median"), long=("long", "median"))
    order = {f: i for i, f in enumerate(rows.drop_duplicates("fidelity_id").sort_values(
        ["N", "W", "Resolution"])["fidelity_id"])}
    med = med.sort_index(key=lambda s: s.map(order))
    res["per_fidelity"] = med.reset_index().to_dict(orient="records")
    res["fidelity_median_tau"] = kt(med["v10"].to_numpy(), med["long"].to_numpy()) if len(med) > 1 else float("nan")
    if len(d):
        best10 = d.loc[d["v10"].idxmax()]
        rank40 = int((d["long"] > best10["long"]).sum()) + 1
        res["winner"] = {"task_id": best10["task_id"], "v10": float(best10["v10"]), "long": float(best10["long"]),
                         "rank_at_long": rank40, "best_long": float(d["long"].max()),
                         "best_long_task": d.loc[d["long"].idxmax(), "task_id"]}
        res["gain_median"] = float((d["long"] - d["v10"]).median())
    return res


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def markdown(res: dict[str, Any], task: str, run_dir: str) -> str:
    """A data-card section."""
    s, e = res["short_epochs"], res["long_epochs"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(res["states"].items()))
    lo, hi = res["per_fidelity_planned"]
    out = [f"## Protocol bias: {s} against {e} epochs ({task})", "",
           f"{res['planned']} (config, fidelity) runs that the shipped table trained with seed 0 under the {s}-epoch "
           f"protocol, {lo}-{hi} at each of {res['fidelities']} fidelities, trained again for {e} epochs on the same "
           f"images and split (cosine schedule over {e} epochs; same seed, so the same initial weights and batches) "
           f"in `{run_dir}`. Done: {res['done']} of {res['planned']} ({states}); every figure below is over the done "
           f"runs, measured {time.strftime('%Y-%m-%d')} by `benchmarks/protocol_bias.py`.", "",
           "| valid_acc ranking | runs | Kendall tau | tau within fidelities (pairs) |", "|---|---:|---:|---:|"]
    for name, t in res["tau"].items():
        out.append(f"| {name} | {t['n']} | {_f(t['tau'])} | {_f(t['tau_within'])} ({t['pairs_within']}) |")
    nz = res.get("noise") or {}
    if nz.get("runs"):
        out.append(f"| noise reference: seed 0 vs seed 1 @{s}, all repeated runs of the table | {nz['runs']} "
                   f"| {_f(nz['tau'])} | {_f(nz['tau_within'])} ({nz['pairs_within']}) |")
    out += ["", f"Tau across the fidelities' medians (@{s} of the table vs @{e}): {_f(res['fidelity_median_tau'])}."]
    if "winner" in res:
        w = res["winner"]
        out.append(f"The best run at epoch {s} ({w['task_id']}, {w['v10']:.2f}%) reaches {w['long']:.2f}% after {e} "
                   f"epochs, rank {w['rank_at_long']} of {res['done']} (best: {w['best_long']:.2f}%, "
                   f"{w['best_long_task']}); median gain of {e} over {s} epochs: {res['gain_median']:+.2f} points.")
    out += ["", f"| fidelity | runs | median valid_acc @{s} ({s}-epoch) | @{s} ({e}-epoch run) | @{e} |",
            "|---|---:|---:|---:|---:|"]
    for r in res["per_fidelity"]:
        out.append(f"| {r['fidelity_id']} | {r['n']} | {_f(r['v10'], 2)} | {_f(r['long_at_short'], 2)} | "
                   f"{_f(r['long'], 2)} |")
    return "\n".join(out) + "\n"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None and False (the help says what those mean)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    from generation.plan import ORDERS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--task", default="fashion_mnist", help="the shipped bundle whose table and protocol are used")
    common.add_argument("--epochs", type=int, default=40, help="max epochs of the longer protocol")
    common.add_argument("--run-dir", type=Path, default=None,
                        help="run folder of the longer runs (default: data/runs/TASK_eEPOCHS)")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("plan", parents=[common], formatter_class=_Help,
                        help="write RUN_DIR/plan.json: table runs again with --epochs epochs")
    pl.add_argument("--configs", type=int, default=100, help="(config, fidelity) runs of the table to train again")
    pl.add_argument("--seed", type=int, default=0, help="seed that draws the runs within each fidelity")
    pl.add_argument("--cores", type=int, default=2, help="cores assumed by the printed wall-time estimate")
    pl.add_argument("--estimate", action="store_true", help="print the core-hour estimates only; write nothing")
    pl.add_argument("--force", action="store_true", help="overwrite an existing plan.json with other tasks")
    r = sub.add_parser("run", parents=[common], formatter_class=_Help,
                       help="print (or with --now, run) the command that trains the plan; rerun to resume")
    r.add_argument("--ranks", type=int, default=2, help="MPI ranks (1: no mpiexec)")
    r.add_argument("--order", default="interleaved", choices=list(ORDERS),
                   help="task order of `generation run` (interleaved: every prefix covers the fidelities)")
    r.add_argument("--time-limit", type=float, default=None, help="seconds after which ranks claim no new task")
    r.add_argument("--now", action="store_true", help="run the command here, in the foreground")
    rp = sub.add_parser("report", parents=[common], formatter_class=_Help,
                        help="compare the rankings on the runs done so far")
    rp.add_argument("--card", type=Path, default=None, help="write the Markdown section (for a data card) here")
    rp.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run_dir = args.run_dir or default_run_dir(args.task, args.epochs)
    from generation.plan import Plan, PlanError, summary

    try:
        table_path, protocol = bundle_table(args.task)
    except PlanError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    if args.cmd == "plan":
        table = pd.read_parquet(table_path)
        try:
            plan = make_protocol_plan(table, protocol, args.epochs, args.configs, args.seed, shown(table_path))
        except (PlanError, ValueError) as e:
            print(f"plan refused: {e}", file=sys.stderr)
            return 2
        print(summary(plan, args.cores))
        meas = measured_estimate(plan, table)
        print(f"core-hours: {plan.core_hours:.2f} by the cost model; {meas:.2f} from these runs' own runtimes in the "
              f"table x {args.epochs}/{protocol.max_epochs} epochs = {meas / max(args.cores, 1):.2f} h on "
              f"{args.cores} cores")
        print("the same plan by the CLI: " + shlex.join(
            ["python", "-m", "generation", "plan-protocol", shown(table_path), "--protocol-of",
             shown(table_path.parent), "--max-epochs", str(args.epochs), "--configs", str(args.configs),
             "--seed", str(args.seed), "--out", shown(run_dir)]))
        if args.estimate:
            return 0
        if (run_dir / "plan.json").exists() and not args.force:
            old = Plan.load(run_dir)
            if [t.task_id for t in old.tasks] != [t.task_id for t in plan.tasks] or old.protocol != plan.protocol:
                print(f"plan refused: {shown(run_dir)}/plan.json holds another plan; use --force to replace it, or "
                      "another --run-dir", file=sys.stderr)
                return 2
            print(f"{shown(run_dir)}/plan.json already holds this plan; kept")
            return 0
        print(f"wrote {plan.save(run_dir)}")
    elif args.cmd == "run":
        if not (run_dir / "plan.json").exists():
            print(f"run refused: {shown(run_dir)}/plan.json does not exist; make it with `python "
                  f"{Path(__file__).name} plan`", file=sys.stderr)
            return 2
        print(shlex.join(run_command(run_dir, args.ranks, args.order, args.time_limit)))
        if args.now:
            return subprocess.run(run_command(run_dir, args.ranks, args.order, args.time_limit,
                                              python=sys.executable)).returncode
    elif args.cmd == "report":
        from generation.merge import merge

        try:
            plan = Plan.load(run_dir)
        except PlanError as e:
            print(f"report refused: {e}", file=sys.stderr)
            return 2
        long = None
        if any((run_dir / "shards").glob("*.parquet")):
            long, _ = merge([run_dir])
        table = pd.read_parquet(table_path)
        rows = curves(plan, table, long, protocol.max_epochs)
        res = analyse(rows, protocol.max_epochs, plan.protocol.max_epochs, seed_noise(table, protocol.max_epochs))
        print(f"{shown(run_dir)}: {res['done']} of {res['planned']} runs done "
              f"({', '.join(f'{k} {v}' for k, v in sorted(res['states'].items()))})")
        text = markdown(res, args.task, shown(run_dir))
        print(text)
        if args.card:
            args.card.write_text(text)
            print(f"wrote {args.card}")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
