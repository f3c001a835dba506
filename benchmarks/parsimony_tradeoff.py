"""What parsimony buys and costs: held-out quality, trees and query time at two parsimony tolerances.

``fit_bundle`` keeps, per metric, the smallest forest within ``tolerance`` (default 1%) of the best validation
RMSE in the metric's fit space (log for the timings). This refits the chosen metrics on the shipped table at
each tolerance (grouped 5-fold held-out quality, as the bundle reports it) and times one query of each
variant's predictor side by side, cycling through 512 random rows (the C backend walks every tree, so the
hot path grows with the trees).

    python benchmarks/parsimony_tradeoff.py                           # cpu_runtime at 0.01 and 0
    python benchmarks/parsimony_tradeoff.py --metrics cpu_runtime,valid_acc --tolerances "0.01;0.03;0"
    python benchmarks/parsimony_tradeoff.py --metrics cpu_runtime,runtime,latency,valid_acc \
        --tolerances "0.01;cpu_runtime=0,runtime=0,latency=0"      # per metric, as `fit --parsimony` takes it
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default=None, help="a merged table (default: the shipped fashion_mnist table)")
    p.add_argument("--metrics", default="cpu_runtime", help="comma-separated metrics to refit")
    p.add_argument("--tolerances", default="0.01;0",
                   help="';'-separated parsimony tolerances, each a number or METRIC=NUMBER pairs (fit --parsimony)")
    p.add_argument("--trials", type=int, default=4, help="XGBoost candidates per metric (the shipped refit's)")
    p.add_argument("--rounds", type=int, default=7, help="alternating timing rounds")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from surrogate_speed import cycling, per_call, random_rows

    from generation.fit import fit_bundle, parse_tolerance
    from jahs_gym.bundle import DATA_DIR, Bundle

    table = Path(args.table or DATA_DIR / "fashion_mnist" / "table.parquet")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    tols = {t.strip(): parse_tolerance(t) for t in args.tolerances.split(";") if t.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        fast = {}
        for i, (tol, spec) in enumerate(tols.items()):
            out = Path(tmp) / f"b{i}"
            man = fit_bundle(table, out, trials=args.trials, metrics=metrics, progress=False, tolerance=spec)
            for m, v in man["metrics"].items():
                q = v["quality"]
                extra = f" | fit space {q['r2_transformed']:.3f}" if "r2_transformed" in q else ""
                print(f"tolerance {tol:<5s} {m:<12s} R2 {q['r2']:.3f} tau {q['kendall_tau']:.3f}{extra} | "
                      f"trees {v['n_trees']} (depth {v['params']['max_depth']})", flush=True)
            fast[tol] = Bundle(out)
        rows = list(random_rows(512, fast[next(iter(tols))].max_epochs))
        fast = {tol: b.predictor() for tol, b in fast.items()}
        times = {tol: [] for tol in tols}
        for _ in range(args.rounds):  # alternate so machine noise hits every variant alike
            for tol in tols:
                times[tol].append(per_call(cycling(fast[tol].predict_one, rows), 0.1))
        for tol in tols:
            print(f"tolerance {tol:<5s} one query of these metrics: {np.median(times[tol]) * 1e6:.1f} us "
                  f"({fast[tol].n_trees} trees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
