"""Surrogate speed: jahs-gym's ForestPredictor against the naive way, side by side in one process.

Naive = the JAHS-Bench-201 way: one XGBoost model per metric, one prediction call per metric
(``Booster.inplace_predict``, what ``XGBRegressor.predict`` runs). Both answer the same rows from the
same bundle; the script checks that they agree (relative tolerance 1e-4) and prints latencies and
ratios. Rounds alternate between the two so machine noise hits both alike. One-query timings cycle
through 512 random rows, as an environment's random actions do, so that the tree walks do not stay on
the cached paths of one repeated row.

    python benchmarks/surrogate_speed.py                     # the shipped fashion_mnist bundle
    python benchmarks/surrogate_speed.py --bundle PATH       # any bundle folder
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable

import numpy as np


def per_call(fn: Callable[[], object], min_time: float = 0.2) -> float:
    """Seconds per call: enough calls to fill ``min_time``."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_time:
            return dt / n
        n *= 2 if dt < min_time / 4 else 1
        n = max(n, int(n * min_time / max(dt, 1e-9)))


def side_by_side(a: Callable[[], object], b: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median seconds per call of a and b over alternating rounds."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(per_call(a))
        tb.append(per_call(b))
    return float(np.median(ta)), float(np.median(tb))


def random_rows(n: int, max_epochs: int, seed: int = 0) -> np.ndarray:
    """n encoded random (config, fidelity) rows, (n, features) float32 C-contiguous."""
    from jahs_gym.space import Fidelity, encode, sample_configs

    rng = np.random.default_rng(seed)
    fids = [Fidelity(int(rng.choice([1, 3, 5])), int(rng.choice([4, 8, 16])), float(rng.choice([0.25, 0.5, 1.0])),
                     int(rng.integers(1, max_epochs + 1))) for _ in range(n)]
    return np.ascontiguousarray(encode(sample_configs(n, rng), fids), dtype=np.float32)


def cycling(fn: Callable[[np.ndarray], object], rows: list[np.ndarray]) -> Callable[[], object]:
    """A no-argument callable that answers the next of ``rows`` each call (round robin)."""
    it = itertools.cycle(rows)
    return lambda: fn(next(it))


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("--task", default="fashion_mnist", help="installed task (see `jahs-gym tasks`)")
    p.add_argument("--bundle", default=None, help="a bundle folder (overrides --task)")
    p.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds")
    p.add_argument("--batch", type=int, default=1024, help="rows in the batch measurement")
    p.add_argument("--seed", type=int, default=0, help="seed of the random query rows")
    args = p.parse_args(argv)

    from jahs_gym.bundle import Bundle, load_bundle

    bundle = Bundle(args.bundle) if args.bundle else load_bundle(args.task)
    n = args.batch
    x = random_rows(n, bundle.max_epochs, args.seed)
    naive = bundle.naive_predictor()
    fast = bundle.predictor()
    m = len(bundle.metrics)
    print(f"bundle {bundle.folder} ({bundle.task}): {m} metrics, {fast.n_trees} trees, {fast.n_nodes} nodes, "
          f"max depth {fast.max_depth}; fast backend: {fast.backend}")

    # equality first
    ref = naive.predict(x)
    got = fast.predict(x)
    one = np.stack([fast.predict_one(x[i]) for i in range(32)])
    ok = np.allclose(got, ref, rtol=1e-4, atol=1e-9) and np.allclose(one, ref[:32], rtol=1e-4, atol=1e-9)
    rel = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-9)))
    print(f"same outputs (rtol 1e-4): {'yes' if ok else 'NO'} (max relative difference {rel:.2e})")

    k = min(n, 512)
    t_naive, t_fast = side_by_side(cycling(naive.predict, [x[i:i + 1] for i in range(k)]),
                                   cycling(fast.predict_one, [x[i] for i in range(k)]), args.rounds)
    print(f"one query ({k} rows in turn), all {m} metrics: naive {t_naive * 1e6:9.1f} us | "
          f"fast {t_fast * 1e6:7.1f} us | ratio {t_naive / t_fast:7.1f}x")
    tb_naive, tb_fast = side_by_side(lambda: naive.predict(x), lambda: fast.predict(x), args.rounds)
    print(f"batch of {n} rows: naive {tb_naive * 1e3:8.2f} ms ({n * m / tb_naive / 1e6:.2f}M rows x metrics/s) | "
          f"fast {tb_fast * 1e3:7.2f} ms ({n * m / tb_fast / 1e6:.2f}M rows x metrics/s) | "
          f"ratio {tb_naive / tb_fast:6.1f}x")
    goals = {"ratio >= 100 (one query)": t_naive / t_fast >= 100, "<= 100 us (one query)": t_fast <= 100e-6,
             ">= 1M rows x metrics/s (batch)": n * m / tb_fast >= 1e6, "same outputs": ok}
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
