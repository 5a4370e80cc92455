"""Figures of the Approach-3 fit: L(N, D) contours, N*/D* against C, residuals, the D*/N* fan chart.

Each function takes the fit (:class:`~flops_fit.fitting.records.ScalingFit`) and, where data are
drawn, the input table (columns N, D, loss, optional C), and saves ``<stem>.png`` and ``<stem>.svg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flops_fit.fitting.records import ScalingFit
from flops_fit.plotting.style import n_label, plt, save


def _flops(fit: ScalingFit, table: pd.DataFrame) -> np.ndarray:
    if "C" in table.columns:
        return table["C"].to_numpy(float)
    return fit.parametric.flops_per_param_token * table["N"].to_numpy(float) * table["D"].to_numpy(float)


def _title(fit: ScalingFit) -> str:
    p = fit.parametric
    return f"L = {p.E:.3g} + {p.A:.3g}/N^{p.alpha:.3f} + {p.B:.3g}/D^{p.beta:.3f}   (N* ∝ C^{p.a:.3f})"


def plot_contours(fit: ScalingFit, table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Contours of the fitted L(N, D), the runs coloured by observed loss, and the frontier."""
    N, D, L = (table[c].to_numpy(float) for c in ("N", "D", "loss"))
    fr = fit.frontier
    n_lo, n_hi = min(N.min(), min(fr.N)) / 2, max(N.max(), max(fr.N)) * 2
    d_lo, d_hi = min(D.min(), min(fr.D)) / 2, max(D.max(), max(fr.D)) * 2
    gn, gd = np.meshgrid(np.geomspace(n_lo, n_hi, 200), np.geomspace(d_lo, d_hi, 200))
    grid = fit.parametric.loss(gn, gd)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    levels = np.quantile(grid, np.linspace(0.02, 0.98, 14))
    cs = ax.contour(gn, gd, grid, levels=np.unique(levels), colors="0.55", linewidths=0.8)
    ax.clabel(cs, fmt="%.2f", fontsize=7)
    sc = ax.scatter(N, D, c=L, cmap="viridis", s=18, edgecolors="k", linewidths=0.3, zorder=3)
    fig.colorbar(sc, ax=ax, label="observed loss")
    ax.plot(fr.N, fr.D, color="crimson", lw=2, label="compute-optimal frontier (Approach 3)")
    for C in np.unique(np.round(np.log10(_flops(fit, table)))):
        ax.plot(gn[0], fit.parametric.tokens_at(10 ** C, gn[0]), ls=":", color="0.3", lw=0.7)
    ax.set(xscale="log", yscale="log", xlim=(n_lo, n_hi), ylim=(d_lo, d_hi),
           xlabel=n_label(fit), ylabel="training tokens D", title=_title(fit))
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", fontsize=8, title="dotted: constant C = 10^k FLOPs", title_fontsize=7)
    return save(fig, stem)


def plot_frontier(fit: ScalingFit, table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """N* and D* against C with bootstrap bands, Approach-2 optima and target-budget predictions."""
    return save(frontier_figure(fit, table), stem)


def frontier_figure(fit: ScalingFit, table: pd.DataFrame) -> Figure:
    """The frontier figure (:func:`plot_frontier`), unsaved. Target budgets are drawn and named only
    when the fit has some: a title about stars that are not there misleads."""
    fr = fit.frontier
    C = np.asarray(fr.C, dtype=float)
    c_data = _flops(fit, table).max()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    levels = fr.quantile_levels
    for ax, q, name in ((axes[0], "N", "N* (parameters)"), (axes[1], "D", "D* (tokens)")):
        y = np.asarray(getattr(fr, q), dtype=float)  # null (a value the fit could not give) -> nan: a gap
        inside = C <= c_data * 1.0001
        ax.plot(C[inside], y[inside], color="C0", lw=2, label="Approach 3 (fitted range)")
        ax.plot(C[C >= c_data], y[C >= c_data], color="C0", lw=2, ls="--", label="extrapolation")
        if fr.quantiles:
            band = np.asarray(fr.quantiles[q], dtype=float)
            ax.fill_between(C, band[0], band[-1], color="C0", alpha=0.2,
                            label=f"bootstrap {levels[0]:.1%}–{levels[-1]:.1%}")
        pb = [b for b in fit.isoflop.per_budget if b.N_opt is not None]
        for interior, marker, label in ((True, "o", "Approach 2 optimum"), (False, "x", "refused (edge) optimum")):
            sel = [b for b in pb if b.interior == interior]
            if sel:
                ax.scatter([b.C for b in sel], [getattr(b, f"{q}_opt") for b in sel], marker=marker, color="C1",
                           zorder=4, label=label)
        iso = fit.isoflop
        if iso.a is not None:
            coef, expo = (iso.N_coef, iso.a) if q == "N" else (iso.D_coef, iso.b)
            ax.plot(C, coef * C ** expo, color="C1", lw=1, label=f"Approach 2 power law (exponent {expo:.3f})")
        for p in fit.predictions:
            # the star is the recommendation (the approach the fit chose) with its 95 % prediction interval
            rec = p.recommended
            ci, value = (rec.ci.get(q), getattr(rec, q)) if rec is not None else (p.ci.get(q), getattr(p, q))
            yerr = None if ci is None else [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
            ax.errorbar([p.C], [value], yerr=yerr, fmt="*", ms=12, color="crimson", capsize=4, zorder=5)
            ax.annotate(f"{value:.3g}", (p.C, value), textcoords="offset points", xytext=(6, -12), fontsize=8)
        ax.axvline(c_data, color="0.6", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=name)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    title = "dotted line: largest fitted C"
    if fit.predictions:
        rec = fit.predictions[0].recommended
        who = "" if rec is None else f" from {'Approach 2' if rec.method == 'isoflop' else 'Approach 3'}"
        title = f"★ recommendation{who} at the target budgets, with its 95% prediction interval; {title}"
    fig.suptitle(title, fontsize=8)
    return fig


def plot_residuals(fit: ScalingFit, table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """ln(observed / fitted loss) against N, D and C: structure here means the law is mis-specified."""
    N, D, L = (table[c].to_numpy(float) for c in ("N", "D", "loss"))
    resid = np.log(L) - np.log(fit.parametric.loss(N, D))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    delta = fit.parametric.huber_delta
    for ax, x, label in zip(axes, (N, D, _flops(fit, table)),
                            (n_label(fit), "training tokens D", "compute C (FLOPs)")):
        ax.scatter(x, resid, s=12, alpha=0.7, color="C0")
        ax.axhline(0, color="k", lw=0.8)
        ax.axhspan(-delta, delta, color="C2", alpha=0.2, lw=0)
        ax.set(xscale="log", xlabel=label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("ln(observed / fitted loss)")
    axes[1].set_title(f"Approach 3 residuals (green: Huber δ = {delta:g}; RMS {np.sqrt(np.mean(resid ** 2)):.4f})",
                      fontsize=9)
    return save(fig, stem)


def plot_ratio_fan(fit: ScalingFit, table: pd.DataFrame | None, stem: str | Path) -> list[Path]:
    """Fan chart of the compute-optimal tokens per parameter D*/N* against C (bootstrap quantiles)."""
    fr = fit.frontier
    C = np.asarray(fr.C, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if fr.quantiles:
        q, levels = np.asarray(fr.quantiles["ratio"], dtype=float), fr.quantile_levels
        m = len(levels)
        for i in range(m // 2):
            ax.fill_between(C, q[i], q[m - 1 - i], color="C0", alpha=0.15 + 0.15 * i,
                            label=f"{levels[m - 1 - i] - levels[i]:.0%} band", lw=0)
    ratio = np.asarray(fr.D, dtype=float) / np.asarray(fr.N, dtype=float)
    ax.plot(C, ratio, color="C0", lw=2, label="point estimate")
    for p in fit.predictions:
        ax.plot([p.C], [p.tokens_per_param], "*", ms=12, color="crimson")
        ax.annotate(f"{p.tokens_per_param:.1f}", (p.C, p.tokens_per_param), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    if table is not None:
        ax.axvline(_flops(fit, table).max(), color="0.6", lw=0.8, ls=":", label="largest fitted C")
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="D*/N* (tokens per parameter)",
           title="Compute-optimal tokens per parameter (Approach 3, bootstrap fan)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, stem)
