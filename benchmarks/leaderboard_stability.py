"""Is a leaderboard's ordering a property of the benchmark, or of its seeds and its refit?

Runs the harness (``python -m agents.bench``) three times on one task and compares the agent orderings
(by mean final regret) with Kendall's tau:

1. seeds F..F+N-1,
2. the disjoint seeds F+N..F+2N-1 (the same surrogate): how much the seeds move the ordering,
3. seeds F..F+N-1 on a surrogate refitted (the shipped bundle's recipe) on a bootstrap resample of the
   table's configs (all of a config's rows together): how much the finite training data moves it.

    python benchmarks/leaderboard_stability.py --task fashion_mnist --protocols default,jahs [--write-card]

``--write-card`` stores the result in the bundle (stability.json, re-signed) and its data card says
whether the ordering held. Prints the three orderings and the taus.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def bootstrap_table(table: Path, out: Path, seed: int) -> Path:
    """The table with its configs resampled with replacement; a config drawn twice gets distinct task and config
    ids (its copies are separate draws; only the refit's own held-out figures, unused here, see them twice)."""
    df = pd.read_parquet(table)
    configs = df["config_id"].unique()
    draw = np.random.default_rng(seed).choice(configs, len(configs), replace=True)
    parts = []
    for cid, n in pd.Series(draw).value_counts().sort_index().items():
        rows = df[df["config_id"] == cid]
        for copy in range(int(n)):
            part = rows.copy()
            if copy:
                part["task_id"] = part["task_id"] + f"-boot{copy}"
                part["config_id"] = part["config_id"] + f"-boot{copy}"
            parts.append(part)
    pd.concat(parts, ignore_index=True).to_parquet(out, index=False)
    return out


def harness(task: str, protocol: str, agents: str, seeds: int, first: int, out: Path, env: dict,
            rl_timesteps: int) -> pd.DataFrame:
    cmd = [sys.executable, "-m", "agents.bench", "--task", task, "--agents", agents, "--seeds", str(seeds),
           "--first-seed", str(first), "--protocol", protocol, "--out", str(out),
           "--policy-dir", str(out / "policies"), "--rl-timesteps", str(rl_timesteps)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    df = pd.read_parquet(out / "results.parquet")
    from agents.stats import final_regrets

    return final_regrets(df).agg(["mean", "sem"]).T


def kendall(a: pd.Series, b: pd.Series) -> float:
    from generation.fit import kendall_tau

    common = a.index.intersection(b.index)
    return float(kendall_tau(a[common].to_numpy(), b[common].to_numpy()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="fashion_mnist", help="a shipped task (its bundle ships its table)")
    p.add_argument("--protocols", default="default,jahs",
                   help="the harness's protocols, comma-separated (default, jahs); one bootstrap refit serves all")
    p.add_argument("--agents", default="random,successive_halving,hyperband,evolution,ucb,thompson,ppo",
                   help="comma-separated agents (agents.bench)")
    p.add_argument("--seeds", type=int, default=30, help="seeds per run (N)")
    p.add_argument("--first-seed", type=int, default=1000, help="F: runs use F..F+N-1 and F+N..F+2N-1")
    p.add_argument("--boot-seed", type=int, default=0, help="seed of the bootstrap resample of configs")
    p.add_argument("--trials", type=int, default=None, help="fit trials of the refit (default: the shipped bundle's)")
    p.add_argument("--rl-timesteps", type=int, default=8192, help="PPO training steps (agents.bench)")
    p.add_argument("--write-card", action="store_true",
                   help="store the result as the bundle's stability.json and rewrite its data card")
    args = p.parse_args(argv)
    if args.seeds < 2 or args.first_seed < 0:
        p.error("--seeds must be >= 2 and --first-seed >= 0")
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    if not protocols or set(protocols) - {"default", "jahs"}:
        p.error(f"--protocols {args.protocols!r}: allowed: default, jahs (comma-separated)")

    from generation.fit import fit_bundle
    from jahs_gym.bundle import load_bundle

    bundle = load_bundle(args.task)
    table = bundle.table_path()
    if table is None:
        p.error(f"the {args.task} bundle ships no table to resample")
    t0 = time.time()
    env = dict(os.environ)
    runs: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        boot_root = tmp / "boot"
        boot_root.mkdir()
        bt = bootstrap_table(table, tmp / "boot_table.parquet", args.boot_seed)
        trials = args.trials or int(bundle.manifest.fit.get("trials", 4))
        fit_bundle(bt, boot_root / args.task, trials=trials, protocol=dict(bundle.manifest.protocol.raw),
                   progress=False, tolerance=shipped_tolerance(bundle.manifest),
                   labels=bundle.manifest.fit.get("labels", "single"))
        for proto in protocols:
            runs[proto] = [
                harness(args.task, proto, args.agents, args.seeds, args.first_seed, tmp / f"{proto}_a", env,
                        args.rl_timesteps),
                harness(args.task, proto, args.agents, args.seeds, args.first_seed + args.seeds, tmp / f"{proto}_b",
                        env, args.rl_timesteps),
                harness(args.task, proto, args.agents, args.seeds, args.first_seed, tmp / f"{proto}_c",
                        {**env, "JAHS_GYM_DATA": str(boot_root)}, args.rl_timesteps)]
    for proto, (a, b, c) in runs.items():
        report(args, proto, a, b, c, time.time() - t0)
    return 0


def report(args: argparse.Namespace, protocol: str, a: pd.DataFrame, b: pd.DataFrame, c: pd.DataFrame,
           wall_s: float) -> None:
    """Print one protocol's orderings and taus; with ``--write-card`` store them in the bundle."""
    from jahs_gym.bundle import load_bundle

    result = {"task": args.task, "protocol": protocol, "seeds": args.seeds, "first_seed": args.first_seed,
              "boot_seed": args.boot_seed, "agents": args.agents.split(","),
              "tau_disjoint_seeds": kendall(a["mean"], b["mean"]), "tau_bootstrap_refit": kendall(a["mean"], c["mean"]),
              "orderings": {k: list(v.sort_values("mean").index) for k, v in (("seeds", a), ("other_seeds", b),
                                                                              ("bootstrap_refit", c))},
              "final_regret": {k: {ag: [round(float(r["mean"]), 3), round(float(r["sem"]), 3)]
                                   for ag, r in v.iterrows()} for k, v in (("seeds", a), ("other_seeds", b),
                                                                          ("bootstrap_refit", c))},
              "wall_s": round(wall_s)}
    for k, order in result["orderings"].items():
        print(f"{protocol:>8} {k:>16}: " + " < ".join(order))
    print(f"{protocol:>8} Kendall tau, disjoint seeds: {result['tau_disjoint_seeds']:.3f}; bootstrap refit: "
          f"{result['tau_bootstrap_refit']:.3f} ({args.seeds} seeds each)")
    if args.write_card:
        write_stability(load_bundle(args.task).folder, result)


def write_stability(folder: Path, result: dict) -> None:
    """Add (or replace) one protocol's result in the bundle's stability.json, rewrite the card, re-sign."""
    path = folder / "stability.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[result["protocol"]] = result
    path.write_text(json.dumps(data, indent=1) + "\n")
    sign_with_card(folder)
    print(f"wrote {path} and {folder / 'DATA_CARD.md'}")


def planned_tasks(task: str) -> int | None:
    """How many tasks the shipped run planned (data/runs/TASK/plan.json), for the data card; None if absent."""
    plan = ROOT / "data" / "runs" / task / "plan.json"
    return len(json.loads(plan.read_text())["tasks"]) if plan.exists() else None


def shipped_tolerance(manifest: object) -> dict[str, float]:
    """The parsimony tolerance each metric of the shipped bundle was fitted with (its manifest records it), so
    the bootstrap refit repeats the shipped recipe."""
    return {m: float(e.parsimony["tolerance"]) for m, e in manifest.metrics.items() if e.parsimony is not None}


def sign_with_card(folder: Path) -> None:
    """Re-sign the bundle (its files changed), rewrite its data card from it, re-sign with the new card."""
    from generation.datacard import write_datacard
    from jahs_gym.bundle import load_bundle, read_manifest, write_manifest

    write_manifest(folder, read_manifest(folder, verify_files=False))
    load_bundle.cache_clear()
    man = read_manifest(folder)
    write_datacard(folder, folder / man.table.file, planned_tasks(man.task))
    write_manifest(folder, man)
    load_bundle.cache_clear()


if __name__ == "__main__":
    sys.exit(main())
