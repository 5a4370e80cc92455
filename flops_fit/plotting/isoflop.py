"""IsoFLOP figures: loss against N per budget with the fitted curve and minimum; optima against C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

from flops_fit.plotting.style import budget_colors, save


def plot_isoflops(fit: dict, results: pd.DataFrame, stem: str | Path) -> list[Path]:
    """One curve per budget: the runs, the fitted polynomial in log N, and its minimum.

    An edge minimum (refused by the fit) is drawn hollow so it is not mistaken for an optimum.
    """
    per_budget = {round(float(e["C"]), 6): e for e in fit["isoflop"].get("per_budget", [])}
    colors = budget_colors(results["budget"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for budget, group in results.groupby("budget"):
        group = group.sort_values("N")
        color = colors[float(budget)]
        ax.plot(group["N"], group["loss"], "o", color=color, label=f"C = {budget:.2g} FLOPs")
        entry = per_budget.get(round(float(budget), 6))
        if entry is None:
            continue
        if entry.get("coef"):
            x = np.linspace(np.log10(group["N"].min()), np.log10(group["N"].max()), 100)
            ax.plot(10**x, np.polyval(entry["coef"], x), "-", color=color, alpha=0.8)
        if entry.get("N_opt") is not None:
            interior = bool(entry.get("interior"))
            ax.plot(entry["N_opt"], entry["loss_opt"], "*", ms=14, mec="black",
                    color=color if interior else "none")
            ci = (entry.get("ci") or {}).get("N_opt")
            if interior and ci:
                ax.hlines(entry["loss_opt"], ci[0], ci[1], color=color, lw=2, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("IsoFLOP curves (★ fitted minimum; hollow ★ = edge minimum, not used)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return save(fig, stem)


def plot_optima(fit: dict, stem: str | Path) -> list[Path]:
    """N* and D* against C on log–log axes, with the fitted power laws C^a and C^b."""
    iso = fit["isoflop"]
    optima = pd.DataFrame(iso.get("per_budget", []))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, exponent, label in ((axes[0], "N_opt", iso.get("a"), "N*"), (axes[1], "D_opt", iso.get("b"), "D*")):
        if optima.empty:
            continue
        interior = optima[optima["interior"].astype(bool) & optima[column].notna()]
        edge = optima[~optima["interior"].astype(bool) & optima[column].notna()]
        ax.plot(interior["C"], interior[column], "o", color="C0", label=f"{label} per budget")
        if not edge.empty:
            ax.plot(edge["C"], edge[column], "o", mfc="none", color="C3", label="edge minimum (excluded)")
        if exponent is not None and len(interior) >= 2:
            logc, logy = np.log(interior["C"]), np.log(interior[column])
            intercept = float(np.mean(logy - exponent * logc))
            c = np.geomspace(optima["C"].min() / 1.5, optima["C"].max() * 1.5, 50)
            ax.plot(c, np.exp(intercept) * c**exponent, "-", color="C0", alpha=0.7,
                    label=f"{label} ∝ C^{exponent:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel("parameters N*" if column == "N_opt" else "tokens D*")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("Compute-optimal model size and tokens (IsoFLOP optima)")
    return save(fig, stem)
