"""Do predictions pile up on one value? 20,000 random configs at the largest fidelity, per task.

A surrogate whose outputs were clipped to the training table's [min, max] put many configs exactly on the table's
best run (a ceiling every optimiser hit: "regret 0" meant "hit the clip"). Predictions are now bounded by what a
metric can physically be (accuracies 0-100); this prints, for valid_acc and test_acc, how many of the configs share
a value with another config, the largest group on one value, and how many sit exactly on the table's maximum, for
the shipped rule and, beside it, for the old rule applied to the same predictions.

    python benchmarks/output_pileup.py [--tasks fashion_mnist,mnist] [--configs 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def pileup(values: np.ndarray, table_max: float) -> tuple[int, int, int]:
    """(rows sharing their value with another row, the largest group on one value, rows on the table's maximum)."""
    _, counts = np.unique(values, return_counts=True)
    return int(counts[counts > 1].sum()), int(counts.max()), int((values == table_max).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--tasks", default="fashion_mnist,mnist", help="comma-separated installed tasks")
    p.add_argument("--configs", type=int, default=20_000, help="random configs per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the configs (jahs_gym.space.sample_configs)")
    args = p.parse_args(argv)
    if args.configs < 2:
        p.error(f"--configs {args.configs}: allowed: 2 or more")

    from jahs_gym.bundle import load_bundle
    from jahs_gym.space import Fidelity, encode, sample_configs

    print(f"{args.configs:,} random configs (seed {args.seed}) at N5, W16, Resolution 1, the last epoch; "
          "shared = configs whose value another config has too\n")
    print(f"{'task':<14} {'metric':<10} {'rule':<34} {'shared':>7} {'largest group':>14} {'on table max':>13}")
    for task in args.tasks.split(","):
        b = load_bundle(task)
        n = args.configs
        x = encode(sample_configs(n, args.seed), [Fidelity(N=5, W=16, Resolution=1.0, epoch=b.max_epochs)] * n)
        forest = b.predictor()
        raw = forest.predict_raw(x)
        shipped = forest.finish(raw.copy())
        for m in ("valid_acc", "test_acc"):
            j = forest.metrics.index(m)
            lo, hi = b.bounds()[m]
            rules = (("shipped: physical range [0, 100]", shipped[:, j]),
                     (f"old: table range [{lo:.2f}, {hi:.2f}]", np.clip(shipped[:, j], lo, hi)))
            for name, v in rules:
                shared, group, on_max = pileup(v, hi)
                print(f"{task:<14} {m:<10} {name:<34} {shared:>7,} {group:>14,} {on_max:>13,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
