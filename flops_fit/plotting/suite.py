"""Every figure of a finished sweep (what the plot rule draws, through :func:`flops_fit.pipeline.plot_step`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flops_fit.fitting.records import ScalingFit
from flops_fit.plotting import parametric
from flops_fit.plotting.curves import plot_loss_curves
from flops_fit.plotting.isoflop import plot_isoflops, plot_optima

#: the figure stems, in reading order (the plot rule declares ``<stem>.png`` and ``<stem>.svg`` of each)
FIGURES = ("isoflops", "optima", "frontier", "contours", "residuals", "ratio_fan", "loss_curves")


def plot_all(
    fit: ScalingFit, fitted: pd.DataFrame, runs: pd.DataFrame, runs_dir: str | Path, out_dir: str | Path
) -> list[Path]:
    """Write every figure of :data:`FIGURES` under ``out_dir``: the fit's from ``fitted`` (the table the
    fit used), the loss curves from each planned run's ``curve.tsv`` under ``runs_dir``."""
    out = Path(out_dir)
    paths = plot_isoflops(fit, fitted, out / "isoflops")
    paths += plot_optima(fit, out / "optima")
    paths += parametric.plot_frontier(fit, fitted, out / "frontier")
    paths += parametric.plot_contours(fit, fitted, out / "contours")
    paths += parametric.plot_residuals(fit, fitted, out / "residuals")
    paths += parametric.plot_ratio_fan(fit, fitted, out / "ratio_fan")
    paths += plot_loss_curves(runs, runs_dir, out / "loss_curves")
    return paths
