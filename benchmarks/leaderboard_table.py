"""Several harness runs side by side: one markdown table of final regret (mean +- SE) per agent and run, with
the top group marked (not significantly worse than the best: exact paired Wilcoxon, Holm, p < 0.05), and each
run's significant pairs. The README's leaderboard table is this script's output.

    python -m agents.bench --task fashion_mnist --protocol jahs --out runs/fm_jahs   # ... one folder per run
    python benchmarks/leaderboard_table.py "fashion_mnist, JAHS=runs/fm_jahs" "fashion_mnist, default=runs/fm"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    p.add_argument("runs", nargs="+", metavar="LABEL=FOLDER",
                   help="a column label and the --out folder of one `python -m agents.bench` run")
    args = p.parse_args(argv)
    from agents.report import leaderboard

    boards, pairs = {}, {}
    for spec in args.runs:
        label, sep, folder = spec.rpartition("=")
        path = Path(folder) / "results.parquet"
        if not sep or not label or not path.is_file():
            p.error(f"{spec!r}: allowed: LABEL=FOLDER, FOLDER holding an agents.bench results.parquet")
        boards[label], pairs[label] = leaderboard(pd.read_parquet(path))
    agents = list(next(iter(boards.values())).index)  # the first run's order
    for b in boards.values():
        agents += [a for a in b.index if a not in agents]
    print("| agent | " + " | ".join(boards) + " |")
    print("|---|" + "---|" * len(boards))
    for a in agents:
        cells = []
        for b in boards.values():
            if a not in b.index:
                cells.append("")
                continue
            r = b.loc[a]
            mark = " ●" if r["top group"] == "yes" else ""
            empty = f" ({int(r['empty_episodes'])} found nothing)" if r["empty_episodes"] else ""
            cells.append(f"{r['final_regret_mean']:.2f} ± {r['final_regret_se']:.2f}{mark}{empty}")
        print(f"| {a} | " + " | ".join(cells) + " |")
    print()
    for label, b in boards.items():
        wins = [f"{a} beats {w}" for a, w in b["beats (p<0.05, Holm)"].items() if w != "-"]
        print(f"- {label}: " + ("; ".join(wins) if wins else "no pair differs significantly"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
