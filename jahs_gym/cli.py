"""``jahs-gym``: list installed bundles and query them from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from jahs_gym.bundle import BundleError, installed_tasks, read_manifest


def _tasks(args: argparse.Namespace) -> int:
    tasks = installed_tasks()
    if not tasks:
        print("no bundles installed; see README 'Generate your own benchmark' and set JAHS_GYM_DATA")
        return 1
    for name, folder in sorted(tasks.items()):
        try:
            m = read_manifest(folder, verify_files=args.verify)
        except BundleError as e:
            print(f"{name}: BROKEN: {e}")
            continue
        t = m.table
        print(f"{name}  ({folder})")
        print(f"  protocol: {json.dumps(dict(m.protocol.raw))}")
        print(f"  trained: {t.tasks} tasks, {t.configs} configs, {t.rows} rows; "
              f"table shipped: {'yes' if t.file else 'no'}; default budget {m.default_budget_s:.0f} s")
        valid = f"; best valid_acc {t.best_valid_acc:.2f}%" if t.best_valid_acc is not None else ""
        opt = m.optimum.get("test_acc")
        ref = (f"{opt['value']:.2f}% test_acc, the surrogate's optimum at {dict(opt['fidelity'])}" if opt else
               "none (an older bundle: refit it)")
        print(f"  regret reference (JAHS-v0): {ref}")
        if t.best_test_acc is not None:
            print(f"  the table's best single run (information, not the reference): test_acc {t.best_test_acc:.2f}% "
                  f"({t.best_test_acc_at}){valid}")
        if m.compute:
            print(f"  compute: {json.dumps(m.to_json()['compute'])}")
        print("  held-out (grouped K-fold); ceiling = a perfect predictor of the seed mean on single-run labels")
        print(f"  {'metric':<12} {'R2':>7} {'tau':>7} {'MAE':>10} {'trees':>6} {'ceil R2':>8} {'ceil tau':>8}")
        for k, e in m.metrics.items():
            q, c = e.quality, e.ceiling
            ceil = f" {c['r2']:8.3f} {c['kendall_tau']:8.3f}" if c else f" {'-':>8} {'-':>8}"
            mark = f"  speed-corrected labels; measured R2 {q['r2_raw_labels']:.3f}" if "r2_raw_labels" in q else ""
            print(f"  {k:<12} {q['r2']:7.3f} {q['kendall_tau']:7.3f} {q['mae']:10.4g} {e.n_trees:6d}{ceil}{mark}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from jahs_gym.benchmark import Benchmark
    from jahs_gym.space import sample_config

    bench = Benchmark(args.task, kind=args.kind)
    fidelity = {k: v for k, v in (("N", args.N), ("W", args.W), ("Resolution", args.resolution)) if v is not None}
    if args.config is not None:
        if args.seed is not None:
            raise ValueError("--seed draws a random config; it has no effect with --config (drop one of them)")
        try:
            config = json.loads(args.config)
        except json.JSONDecodeError as e:
            raise ValueError(f"--config is not valid JSON ({e}); example: "
                             '\'{"Op1": 2, "Op2": 2, "Op3": 0, "Op4": 3, "Op5": 4, "Op6": 0, "N": 3, "W": 8, '
                             '"Resolution": 0.5}\'') from None
    else:
        config = sample_config(0 if args.seed is None else args.seed).as_dict()  # the config keys only
        fidelity = {"N": 3, "W": 8, "Resolution": 0.5, **fidelity}
    query = bench.resolve(config, nepochs=args.epochs, **fidelity)
    out = bench(query, full_trajectory=args.trajectory)
    print(json.dumps({"task": args.task, "kind": args.kind, "config": query, "result": out}, indent=1))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import jahs_gym  # noqa: F401

    env = gym.make("JAHS-v0", task=args.task, max_steps=args.steps)
    obs, info = env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    print(f"JAHS-v0 on {info['task']}: random search, budget {info['budget']:.0f} simulated seconds, "
          f"at most {args.steps} steps")
    print(f"{'step':>4} {'N':>2} {'W':>3} {'res':>5} {'ep':>3} {'valid%':>7} {'cost s':>8} {'used':>6} "
          f"{'incumbent%':>10}")
    total = 0.0
    for step in range(1, args.steps + 1):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        if info["over_budget"]:
            print(f"{'-':>4} next evaluation ({info['cost']:.0f} s) does not fit the budget: episode ends")
        else:
            f = info["fidelity"]
            print(f"{step:4d} {f['N']:2d} {f['W']:3d} {f['Resolution']:5.2f} {f['epoch']:3d} "
                  f"{info['valid_acc']:7.2f} {info['cost']:8.1f} {obs[9]:6.1%} {info['incumbent_valid_acc']:10.2f}")
        if terminated or truncated:
            break
    if "incumbent" not in info:
        print(f"return {total:.3f}; nothing was evaluated within the budget")
        return 0
    print(f"return {total:.3f}; incumbent test accuracy {info['incumbent_test_acc']:.2f}% "
          f"(regret {info['regret']:.2f} points against the surrogate's optimum, "
          f"{info['regret_reference']:.2f}%)")
    print("incumbent:", {k: (round(v, 5) if isinstance(v, float) else v) for k, v in info["incumbent"].items()})
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line (``jahs-gym query: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} is not allowed; allowed: an integer >= {minimum}")
        return v

    return parse


def main(argv: list[str] | None = None) -> int:
    """The ``jahs-gym`` command: ``tasks``, ``query`` or ``demo``.

    Args:
        argv: The arguments; None for ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 2 with one line on stderr for a refused input or bundle, 1 when the
        reader of stdout left.
    """
    p = _Parser(prog="jahs-gym", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tasks", help="installed bundles: protocol, data and held-out quality per metric",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--no-verify", dest="verify", action="store_false", help="skip the sha256 check of every file")
    q = sub.add_parser("query", help="predict (or look up) one config's metrics and print them as JSON",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("--task", default="fashion_mnist", help="an installed task (see `jahs-gym tasks`)")
    q.add_argument("--kind", default="surrogate", choices=["surrogate", "table"],
                   help="answer from the surrogate or from the trained rows")
    q.add_argument("--config", default=None,
                   help="JSON dict of config keys (Op1..Op6 required) plus optional N, W, Resolution, epoch; "
                        "default: a random config")
    q.add_argument("--seed", type=_count(0), default=None,
                   help="seed of the random config when --config is not given (default 0)")
    q.add_argument("--N", type=int, default=None, help="cells per stage (1, 3, 5; a random config's default 3)")
    q.add_argument("--W", type=int, default=None, help="first-stage width (4, 8, 16; a random config's default 8)")
    q.add_argument("--resolution", type=float, default=None,
                   help="resolution (0.25, 0.5, 1; a random config's default 0.5)")
    q.add_argument("--epochs", type=int, default=None,
                   help="epochs trained (default: the config's epoch, else the task's max)")
    q.add_argument("--trajectory", action="store_true", help="print every epoch up to --epochs")
    d = sub.add_parser("demo", help="one random-search episode of JAHS-v0, printed step by step",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--task", default="fashion_mnist", help="an installed task (see `jahs-gym tasks`)")
    d.add_argument("--steps", type=_count(1), default=20, help="evaluations at most")
    d.add_argument("--seed", type=_count(0), default=0, help="episode and action seed")
    args = p.parse_args(argv)
    try:
        return {"tasks": _tasks, "query": _query, "demo": _demo}[args.cmd](args)
    except (BundleError, KeyError, FileNotFoundError, ValueError) as e:  # SpaceError is a ValueError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"jahs-gym {args.cmd}: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `jahs-gym tasks | head`: the reader left; no traceback (Python's recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
