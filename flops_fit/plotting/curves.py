"""Training curves of every run, one panel per budget: did each run train, and did it finish decaying?"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from flops_fit.paths import CURVE, run_file
from flops_fit.plotting.style import plt, save

#: the first part of a run (warmup, the drop from ln V) is left above the y-range, so the
#: differences between sizes at the end, which decide the optimum, are readable
SKIP_FRACTION = 0.1


def plot_loss_curves(runs: pd.DataFrame, runs_dir: str | Path, stem: str | Path) -> list[Path]:
    """Train loss (lines) and held-out loss (dots) against tokens; one colour per model size, in every panel."""
    budgets = sorted(runs["budget"].unique())
    cols = min(2, len(budgets))
    rows = math.ceil(len(budgets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4 * rows), squeeze=False)
    sizes = sorted(runs["params"].unique())
    cmap = plt.get_cmap("plasma")
    colors = {n: cmap(0.85 * i / max(1, len(sizes) - 1)) for i, n in enumerate(sizes)}
    for ax, budget in zip(axes.flat, budgets):
        group = runs[runs["budget"] == budget].sort_values("params")
        tails = []
        for run in group.itertuples():
            path = run_file(runs_dir, run.run_id, CURVE)
            if not path.exists():
                continue
            curve = pd.read_csv(path, sep="\t")
            color = colors[run.params]
            ax.plot(curve["tokens"], curve["train_loss"], color=color, lw=1,
                    label=f"{run.size_param} = {run.size} (N = {run.params:.2g})")
            evals = curve.dropna(subset=["eval_loss"])
            ax.plot(evals["tokens"], evals["eval_loss"], "o", color=color, ms=3)
            tail = curve[curve["tokens"] >= SKIP_FRACTION * curve["tokens"].max()]
            tails += list(tail["train_loss"].dropna()) + list(tail["eval_loss"].dropna())
        if tails:
            lo, hi = np.min(tails), np.max(tails)
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set_xscale("log")
        ax.set_title(f"C = {budget:.2g} FLOPs", fontsize=10)
        ax.set_xlabel("tokens seen (count)")
        ax.set_ylabel("loss (loss_fn units)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(budgets):]:
        ax.set_visible(False)
    fig.suptitle(f"Loss curves by budget (lines: train, dots: held-out; first {SKIP_FRACTION:.0%} of tokens "
                 "may lie above the axis)", fontsize=10)
    return save(fig, stem)
