"""Training curves of every run, one panel per budget: did each run train, and did it finish decaying?"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from flops_fit.plotting.style import save


def plot_loss_curves(runs: pd.DataFrame, runs_dir: str | Path, stem: str | Path) -> list[Path]:
    """Train loss (lines) and held-out loss (dots) against tokens, coloured by model size."""
    budgets = sorted(runs["budget"].unique())
    cols = min(2, len(budgets))
    rows = math.ceil(len(budgets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    cmap = plt.get_cmap("plasma")
    for ax, budget in zip(axes.flat, budgets):
        group = runs[runs["budget"] == budget].sort_values("params")
        for i, run in enumerate(group.itertuples()):
            path = Path(runs_dir) / run.run_id / "curve.tsv"
            if not path.exists():
                continue
            curve = pd.read_csv(path, sep="\t")
            color = cmap(0.85 * i / max(1, len(group) - 1))
            ax.plot(curve["tokens"], curve["train_loss"], color=color, lw=1, label=f"{run.size_param}={run.size}")
            evals = curve.dropna(subset=["eval_loss"])
            ax.plot(evals["tokens"], evals["eval_loss"], "o", color=color, ms=3)
        ax.set_xscale("log")
        ax.set_title(f"C = {budget:.2g} FLOPs")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("loss (nats/token)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(budgets):]:
        ax.set_visible(False)
    fig.suptitle("Loss curves (lines: train, dots: held-out)")
    return save(fig, stem)
