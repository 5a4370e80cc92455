"""``flops-fit fit TABLE --out DIR``: fit scaling laws to any table of (N, D, loss) runs.

Writes ``fit.json``, ``summary.tsv`` and (unless ``--no-plots``) the figures of the workflow's plot
rule that a table allows, under ``DIR/plots``; prints where the isoFLOP groups came from, both
exponents with their intervals, the backtest and every warning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .fit import fit_table, prepare_table
from .parametric import HUBER_DELTA
from .records import ScalingFit
from .summary import summary_lines, write_fit
from .table import read_table


def _degree(text: str) -> int | str:
    if text not in ("auto", "2", "3"):
        raise argparse.ArgumentTypeError(f"must be auto, 2 or 3, not {text!r}")
    return text if text == "auto" else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="CSV or TSV with columns N, D, loss (optional C, budget, run_id, status)")
    parser.add_argument("--out", required=True, help="output folder for fit.json, summary.tsv and plots/")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000; 0 = none)")
    parser.add_argument("--target-budgets", type=float, nargs="*", default=[], metavar="C",
                        help="FLOP budgets to predict N*, D*, loss at")
    parser.add_argument("--budgets", type=float, nargs="*", default=None, metavar="C",
                        help="planned isoFLOP budgets (rows join the nearest); a 'budget' column wins")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--degree", type=_degree, default="auto", metavar="{auto,2,3}",
                        help="isoFLOP profile polynomial in ln N: auto (default: cubic where a budget has 6+ "
                             "sizes and the cubic predicts left-out runs better), 2 = parabola, 3 = cubic")
    parser.add_argument("--huber-delta", type=float, default=HUBER_DELTA,
                        help=f"Huber threshold of the Approach-3 objective on log loss (default {HUBER_DELTA:g}; "
                             "some published fits use 1e-4)")
    parser.add_argument("--noise-sd", type=float, default=None,
                        help="run-to-run loss noise (e.g. from seed replicates): floor of each profile's residual sd")
    parser.add_argument("--recommend-from", choices=("isoflop", "parametric"), default="isoflop",
                        help="approach that gives N* at the target budgets (default isoflop; the other is shown beside)")
    parser.add_argument("--loss-floor", type=float, default=None, metavar="L",
                        help="known lower bound on the loss (e.g. the data's entropy rate): Approach 3's E is "
                             "fitted at or above it, so no predicted loss is below it (default: none)")
    parser.add_argument("--n-convention", default=None, metavar="TEXT",
                        help="what N counts, for the figure labels (e.g. 'non-embedding'); default: unknown")
    parser.add_argument("--no-plots", action="store_true", help="write fit.json and summary.tsv only")


def write_plots(fit: ScalingFit, table: pd.DataFrame, out: Path) -> list[Path]:
    """The plot rule's figures that a table allows (no training curves; isoFLOP ones need groups)."""
    from flops_fit.plotting import parametric
    from flops_fit.plotting.isoflop import plot_isoflops, plot_optima

    paths = []
    if fit.isoflop.per_budget:
        grouped = table[table["budget"].notna()]
        paths += plot_isoflops(fit, grouped, out / "isoflops") + plot_optima(fit, out / "optima")
    for name in ("frontier", "contours", "residuals", "ratio_fan"):
        paths += getattr(parametric, f"plot_{name}")(fit, table, out / name)
    return paths


def main(args: argparse.Namespace) -> int:
    try:
        table = read_table(args.table)
        result = fit_table(table, budgets=args.budgets, target_budgets=args.target_budgets,
                           bootstrap=args.bootstrap, seed=args.seed, degree=args.degree,
                           huber_delta=args.huber_delta, noise_sd=args.noise_sd,
                           recommend_from=args.recommend_from, n_convention=args.n_convention,
                           loss_floor=args.loss_floor)
        write_fit(result, Path(args.out) / "fit.json", Path(args.out) / "summary.tsv")
    except ValueError as exc:
        print(f"flops-fit fit: error: {exc}", file=sys.stderr)
        return 2
    for w in result.warnings:
        print(f"flops-fit fit: warning: {w}", file=sys.stderr)
    for line in summary_lines(result):
        print(line)
    written = [f"{args.out}/fit.json", f"{args.out}/summary.tsv"]
    if not args.no_plots:
        paths = write_plots(result, prepare_table(table, args.budgets)[0], Path(args.out) / "plots")
        written.append(f"{len(paths)} figures in {args.out}/plots")
    print(f"wrote {', '.join(written)}")
    return 0
