"""``flops-fit fit TABLE --out DIR``: fit scaling laws to any table of (N, D, loss) runs."""

from __future__ import annotations

import argparse
import sys

from .fit import fit_table
from .report import write_fit
from .table import read_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="CSV or TSV with columns N, D, loss (optional C, budget, run_id, status)")
    parser.add_argument("--out", required=True, help="output folder for fit.json and summary.tsv")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000; 0 = none)")
    parser.add_argument("--target-budgets", type=float, nargs="*", default=[], metavar="C",
                        help="FLOP budgets to predict N*, D*, loss at")
    parser.add_argument("--budgets", type=float, nargs="*", default=None, metavar="C",
                        help="planned isoFLOP budgets (rows join the nearest); a 'budget' column wins")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--degree", type=int, choices=(2, 3), default=2,
                        help="isoFLOP profile polynomial in ln N: 2 = parabola (default), 3 = cubic")


def main(args: argparse.Namespace) -> int:
    try:
        table = read_table(args.table)
        result = fit_table(table, budgets=args.budgets, target_budgets=args.target_budgets,
                           bootstrap=args.bootstrap, seed=args.seed, degree=args.degree)
        write_fit(result, args.out)
    except ValueError as exc:
        print(f"flops-fit fit: error: {exc}", file=sys.stderr)
        return 2
    for w in result["warnings"]:
        print(f"flops-fit fit: warning: {w}", file=sys.stderr)
    p = result["parametric"]
    print(f"Approach 3: E={p['E']:.4g} A={p['A']:.4g} B={p['B']:.4g} alpha={p['alpha']:.4f} beta={p['beta']:.4f} "
          f"a={p['a']:.4f}; Approach 2: a={result['isoflop']['a']}; wrote {args.out}/fit.json")
    return 0
