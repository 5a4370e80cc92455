"""Every figure of a finished sweep, from the files the fit rule wrote (what the plot rule runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from flops_fit.planning import read_runs_table
from flops_fit.plotting import parametric
from flops_fit.plotting.curves import plot_loss_curves
from flops_fit.plotting.isoflop import plot_isoflops, plot_optima

#: the figure stems, in reading order (the plot rule declares ``<stem>.png`` and ``<stem>.svg`` of each)
FIGURES = ("isoflops", "optima", "frontier", "contours", "residuals", "ratio_fan", "loss_curves")


def plot_all(fit_json: str | Path, results_tsv: str | Path, runs_tsv: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every figure of :data:`FIGURES` under ``out_dir``; the runs' curves are read next to their metrics."""
    fit = json.loads(Path(fit_json).read_text())
    results = pd.read_csv(results_tsv, sep="\t")
    runs = read_runs_table(runs_tsv)
    runs_dir = Path(results_tsv).parents[1] / "runs"
    out = Path(out_dir)
    paths = plot_isoflops(fit, results, out / "isoflops")
    paths += plot_optima(fit, out / "optima")
    paths += parametric.plot_frontier(fit, results, out / "frontier")
    paths += parametric.plot_contours(fit, results, out / "contours")
    paths += parametric.plot_residuals(fit, results, out / "residuals")
    paths += parametric.plot_ratio_fan(fit, results, out / "ratio_fan")
    paths += plot_loss_curves(runs, runs_dir, out / "loss_curves")
    return paths
