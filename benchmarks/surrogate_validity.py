"""Is the surrogate a valid benchmark? Do optimisers rank the same on it as on the real runs it was fitted on?

The criterion of Eggensperger et al. (2015) and YAHPO Gym: run the same optimisers on the real data and on the
surrogate, restricted to the same choices, and compare their rankings. Here the choices are the arms of the
task's table (its trained (config, fidelity) runs, each at any epoch):

* ``backend="table"``: every evaluation returns a run's measured learning curve and charges its measured cost
  (timings at the training machine's median speed, as the surrogate learns them); with ``--noise`` one real
  seed of the run (the episode's hash picks it), without it the seeds' mean;
* ``backend="surrogate_arms"``: the same arms, every number predicted by the shipped surrogate (with ``--noise``
  its seed-noise model).

The harness's agents (their arm-space versions, agents/arms.py) run the same seeds on both, under the same budget
(the bundle's default) and continuation. Regret on each backend is against its own best arm (the best
noise-free test accuracy of the table's runs at any epoch). Printed: per agent the mean +- SE final regret on both
backends and their difference; Kendall tau between the two agent orderings by mean final regret; the mean absolute
difference in final regret; and which pairs the table's Wilcoxon tests (Holm) call significantly different, and
whether the surrogate agrees.

    python benchmarks/surrogate_validity.py --task fashion_mnist --seeds 30 [--noise] [--write-card]

``--write-card`` stores the result as the bundle's validity.json (re-signed) and its data card's headline
validity figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_AGENTS = "random,successive_halving,hyperband,evolution,ucb,thompson,optuna_tpe"
BACKENDS = ("table", "surrogate_arms")


def run_backend(task: str, backend: str, agents: list[str], seeds: int, noise: bool, workers: int,
                budget: float | None) -> pd.DataFrame:
    """The harness's result rows of every agent x seed on one backend."""
    from agents.bench import RESULT_COLUMNS, run_jobs
    from agents.common import Protocol

    protocol = Protocol(task=task, budget=budget, max_steps=1000, noise=noise, continuation=True, backend=backend)
    jobs = [(a, s) for a in agents for s in range(seeds)]
    rows = run_jobs(jobs, protocol, ROOT / "policies", workers)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def compare(results: dict[str, pd.DataFrame]) -> dict:
    """Per-agent final regret on both backends, the orderings' Kendall tau, the mean |difference|, and whether
    the table's significant pairs keep their direction and significance on the surrogate."""
    from agents.stats import final_regrets, pairwise
    from generation.labels import kendall_tau

    finals = {b: final_regrets(df) for b, df in results.items()}  # (seed x agent) final regret
    mean = {b: f.mean() for b, f in finals.items()}
    se = {b: f.std(ddof=1) / np.sqrt(f.count()) for b, f in finals.items()}
    agents = list(mean["table"].sort_values().index)
    t, s = mean["table"][agents].to_numpy(), mean["surrogate_arms"][agents].to_numpy()
    pairs = {b: pairwise(f).set_index(["a", "b"]) for b, f in finals.items()}
    sig = pairs["table"][pairs["table"]["significant"]]
    kept = [bool(pairs["surrogate_arms"].at[k, "significant"] and pairs["surrogate_arms"].at[k, "lower"] == r["lower"])
            for k, r in sig.iterrows()]
    sur_sig = pairs["surrogate_arms"][pairs["surrogate_arms"]["significant"]]
    spurious = [k for k, r in sur_sig.iterrows() if not (pairs["table"].at[k, "significant"]
                                                        and pairs["table"].at[k, "lower"] == r["lower"])]
    return {
        "agents": agents, "seeds": int(finals["table"].shape[0]),
        "final_regret": {b: {a: [round(float(mean[b][a]), 3), round(float(se[b][a]), 3)] for a in agents}
                         for b in results},
        "orderings": {b: list(mean[b].sort_values().index) for b in results},
        "kendall_tau": round(kendall_tau(t, s), 3),
        "mean_abs_diff": round(float(np.mean(np.abs(t - s))), 3),
        "table_significant_pairs": int(len(sig)), "kept_by_surrogate": int(sum(kept)),
        "surrogate_only_significant_pairs": [list(k) for k in spurious],
    }


def report(task: str, r: dict, noise: bool) -> str:
    lines = [f"## {task}: table vs surrogate on the table's arms ({r['seeds']} seeds, "
             f"noise {'on' if noise else 'off'})",
             "", "| agent | table final regret | surrogate final regret | difference |", "|---|---|---|---|"]
    for a in r["agents"]:
        (tm, ts), (sm, ss) = r["final_regret"]["table"][a], r["final_regret"]["surrogate_arms"][a]
        lines.append(f"| {a} | {tm:.2f} +- {ts:.2f} | {sm:.2f} +- {ss:.2f} | {sm - tm:+.2f} |")
    lines += ["", f"Kendall tau between the orderings: {r['kendall_tau']:.2f}; mean |difference| in final regret: "
              f"{r['mean_abs_diff']:.2f} points.",
              f"Orderings: table {' < '.join(r['orderings']['table'])}; surrogate "
              f"{' < '.join(r['orderings']['surrogate_arms'])}.",
              f"Pairs significantly different on the table (Wilcoxon, Holm, p < 0.05): {r['table_significant_pairs']}, "
              f"of which the surrogate finds {r['kept_by_surrogate']} in the same direction; pairs significant on "
              f"the surrogate only: {len(r['surrogate_only_significant_pairs'])}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="fashion_mnist", help="installed task whose bundle ships its table")
    p.add_argument("--agents", default=DEFAULT_AGENTS, help="comma-separated harness agents with arm-space versions")
    p.add_argument("--seeds", type=int, default=30, help="episodes per agent and backend (seeds 0..N-1)")
    p.add_argument("--noise", action="store_true",
                   help="table: one real seed per run; surrogate: its seed-noise model (default: seed means / "
                        "noise-free predictions)")
    p.add_argument("--budget", type=float, default=None, help="simulated seconds per episode (default: the bundle's)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--write-card", action="store_true",
                   help="store the result as the bundle's validity.json and rewrite its data card")
    args = p.parse_args(argv)
    if args.seeds < 2 or args.workers < 1:
        p.error("--seeds must be >= 2 and --workers >= 1")
    if args.budget is not None and not (np.isfinite(args.budget) and args.budget > 0):
        p.error(f"--budget {args.budget}: allowed: a positive, finite number of simulated seconds")
    from agents.arms import ARM_AGENTS

    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    bad = [a for a in agents if a not in ARM_AGENTS]
    if bad or len(agents) < 2:
        p.error(f"--agents {args.agents!r}: need 2 or more of {', '.join(ARM_AGENTS)}")
    t0 = time.time()
    results = {b: run_backend(args.task, b, agents, args.seeds, args.noise, args.workers, args.budget)
               for b in BACKENDS}
    r = compare(results)
    r.update({"task": args.task, "noise": args.noise, "budget": args.budget, "wall_s": round(time.time() - t0)})
    print(report(args.task, r, args.noise))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    if args.write_card:
        from benchmarks.leaderboard_stability import sign_with_card
        from jahs_gym.bundle import load_bundle

        folder = load_bundle(args.task).folder
        path = folder / "validity.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["noise" if args.noise else "noise_free"] = r
        path.write_text(json.dumps(data, indent=1) + "\n")
        sign_with_card(folder)
        print(f"wrote {path} and {folder / 'DATA_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
