"""Approach-2 figures: loss against N per budget (the isoFLOP profiles), and the optima against C.

Intervals drawn here are the fit's own: each optimum's standard error in ln N* (``sd_lnN_opt``,
delta method) and, at the target budgets, the bootstrap interval of the Approach-2 power law.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flops_fit.fitting.records import BudgetOptimum, IsoflopFit, ScalingFit
from flops_fit.plotting.style import budget_colors, n_label, plt, save

#: a 95 % normal interval from a standard error (the fit's CI level)
Z95 = 1.96


def _interval(entry: BudgetOptimum) -> tuple[float, float] | None:
    """95 % interval of N* from the standard error of ln N*, or None without one."""
    sd = entry.sd_lnN_opt
    if entry.N_opt is None or sd is None:
        return None
    return entry.N_opt * np.exp(-Z95 * sd), entry.N_opt * np.exp(Z95 * sd)


def _degree(entry: BudgetOptimum | None, iso: IsoflopFit) -> int:
    """The budget's own profile degree (``degree: auto`` chooses per budget); older fit.json files
    carry only the fit-wide degree."""
    if entry is not None and entry.degree in (2, 3):
        return entry.degree
    return iso.degree if iso.degree in (2, 3) else 2


def _edge(entry: BudgetOptimum, sizes: tuple[float, float] | None = None) -> tuple[float, int]:
    """Where to draw a budget's fitted minimum: ``(N, side)``, N clipped to the sizes trained.

    ``side`` is -1 (the vertex lies below the smallest size trained), +1 (above the largest) or 0
    (inside, drawn where it is). A refused vertex can lie far outside the sizes (a nearly flat or
    concave profile puts it 40x below them); drawn there it would stretch the axis and read as a
    measurement. ``sizes`` is the budget's N range when the fit has none (older fit.json files).
    """
    n_range = entry.N_range or sizes
    if n_range is None:
        return float(entry.N_opt), 0
    lo, hi = float(min(n_range)), float(max(n_range))
    if entry.N_opt < lo:
        return lo, -1
    if entry.N_opt > hi:
        return hi, 1
    return float(entry.N_opt), 0


#: the marker at the edge of the sizes trained for a vertex beyond them, by side (N axis horizontal)
_BEYOND_N = {-1: "<", 1: ">"}


def plot_isoflops(fit: ScalingFit, results: pd.DataFrame, stem: str | Path) -> list[Path]:
    """The isoFLOP profiles (:func:`isoflops_figure`) as PNG and SVG."""
    return save(isoflops_figure(fit, results), stem)


def isoflops_figure(fit: ScalingFit, results: pd.DataFrame) -> Figure:
    """One colour per budget: the runs, the fitted polynomial in ln N, and its minimum with a 95 % bar.

    The curve is the least-squares polynomial of the budget's degree in ln N (the same problem the fit
    solves), drawn over the sizes trained only. An edge minimum (refused by the fit) is drawn hollow so
    it is not mistaken for an optimum; one whose vertex lies beyond the sizes trained is drawn at the
    edge it lies beyond, as a hollow ◀ or ▶ on the curve, never at the vertex itself. Every artist of
    a budget carries ``gid = "C=<budget>"``.
    """
    iso = fit.isoflop
    per_budget = {round(float(e.C), 6): e for e in iso.per_budget}
    colors = budget_colors(results["budget"])
    fig, ax = plt.subplots(figsize=(8, 5))
    beyond_drawn = hollow_drawn = False
    for budget, group in results.groupby("budget"):
        color, gid = colors[float(budget)], f"C={float(budget):g}"
        entry = per_budget.get(round(float(budget), 6))
        interior = entry is not None and entry.interior and entry.N_opt is not None
        label = f"C = {budget:.2g} FLOPs" + (f": N* = {entry.N_opt:.3g}" if interior else "")
        ax.plot(group["N"], group["loss"], "o", color=color, ms=6, label=label, gid=gid)
        lnN = np.log(group["N"].to_numpy(float))
        degree = _degree(entry, iso)
        poly = None
        if np.unique(lnN).size > degree:
            poly = np.polynomial.Polynomial.fit(lnN, group["loss"].to_numpy(float), degree)
            x = np.linspace(lnN.min(), lnN.max(), 200)
            ax.plot(np.exp(x), poly(x), "-", color=color, alpha=0.8, lw=1.5, gid=gid)
        if entry is None or entry.N_opt is None or entry.loss_opt is None:
            continue
        n_opt, ci = entry.N_opt, _interval(entry)
        if interior and ci:  # the 95 % interval of N*, as a capped bar through the minimum
            ax.errorbar([n_opt], [entry.loss_opt], xerr=[[n_opt - ci[0]], [ci[1] - n_opt]], fmt="none",
                        ecolor=color, elinewidth=2, capsize=6, capthick=2, zorder=4, gid=gid)
        n_drawn, side = (n_opt, 0) if interior else _edge(entry, (float(np.exp(lnN.min())), float(np.exp(lnN.max()))))
        if side:  # the vertex is beyond the sizes trained: mark the edge, on the curve (or the nearest run)
            nearest = group.iloc[int(np.argmin(np.abs(lnN - np.log(n_drawn))))]
            loss = float(poly(np.log(n_drawn))) if poly is not None else float(nearest["loss"])
            ax.plot(n_drawn, loss, _BEYOND_N[side], ms=11, mec="black", mew=1.5, color="none", zorder=5, gid=gid)
            beyond_drawn = True
        else:
            ax.plot(n_drawn, entry.loss_opt, "*", ms=16, mec="black", color=color if interior else "none",
                    zorder=5, gid=gid)
            hollow_drawn = hollow_drawn or not interior
    # the markers' meaning, in the legend (black, not a budget's colour)
    if hollow_drawn:
        ax.plot([], [], "*", ms=12, mec="black", color="none", label="hollow ★: edge minimum (not used)")
    if beyond_drawn:
        ax.plot([], [], ">", ms=9, mec="black", mew=1.5, color="none",
                label="◀ / ▶: fitted minimum beyond the sizes trained, drawn at that edge (not used)")
    ax.set_xscale("log")
    ax.set_xlabel(f"{n_label(fit)} (count)")
    ax.set_ylabel("held-out loss (loss_fn units; nats/token for cross-entropy)")
    ax.set_title("IsoFLOP profiles: ★ fitted minimum with 95 % interval of N*; hollow = edge minimum (not used)",
                 fontsize=9)
    ax.legend(fontsize=8, title="training budget: fitted N*", title_fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_optima(fit: ScalingFit, stem: str | Path) -> list[Path]:
    """N* and D* against C (log–log): per-budget optima with 95 % bars, the power laws, target budgets."""
    return save(optima_figure(fit), stem)


def optima_figure(fit: ScalingFit) -> Figure:
    """The optima figure (:func:`plot_optima`), unsaved; its title names target budgets only when
    some are drawn."""
    iso = fit.isoflop
    targets = [p for p in fit.predictions if p.isoflop_N is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = ((axes[0], "N", iso.a, iso.N_coef, "parameters N* (count)"),
              (axes[1], "D", iso.b, iso.D_coef, "training tokens D* (count)"))
    for ax, q, exponent, coef, ylabel in panels:
        found = [e for e in iso.per_budget if getattr(e, f"{q}_opt") is not None]
        for interior, style in ((True, dict(fmt="o", color="C0", label=f"{q}* per budget (95 % bar)")),
                                (False, dict(fmt="o", mfc="none", color="C3", label="edge minimum (excluded)"))):
            # a refused vertex beyond the sizes trained is drawn below, at that edge
            rows = [e for e in found if e.interior == interior and (interior or not _edge(e)[1])]
            if not rows:
                continue
            bars = [_interval(e) for e in rows]
            n_opt = np.array([e.N_opt for e in rows], float)
            value = np.array([getattr(e, f"{q}_opt") for e in rows], float)
            lo = np.array([b[0] if b else n for b, n in zip(bars, n_opt)])
            hi = np.array([b[1] if b else n for b, n in zip(bars, n_opt)])
            if not interior:  # a refused minimum's bar, like its point, stays within the sizes
                ranges = [e.N_range or (n, n) for e, n in zip(rows, n_opt)]
                lo = np.maximum(lo, [min(r) for r in ranges])
                hi = np.minimum(hi, [max(r) for r in ranges])
            if q == "D":  # D* = C / (k N*): the interval of N* inverted
                lo, hi = value * n_opt / hi, value * n_opt / lo
            # a bootstrap percentile interval need not contain the point estimate: no negative bar lengths
            yerr = [np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)]
            ax.errorbar([e.C for e in rows], value, yerr=yerr, capsize=3, zorder=4, **style)
        beyond = [(e, *_edge(e)) for e in found if not e.interior and _edge(e)[1]]
        for i, (e, n_edge, side) in enumerate(beyond):
            # at the edge of the sizes trained; D* = C / (k N) there, so its direction is the opposite
            value, direction = (n_edge, side) if q == "N" else (e.D_opt * e.N_opt / n_edge, -side)
            ax.plot([e.C], [value], "v" if direction < 0 else "^", ms=9, mfc="none", mec="C3", mew=1.5, zorder=4,
                    label=None if i else f"edge minimum beyond the sizes trained: drawn at the {q} of that edge, "
                                         "▼/▲ = the vertex lies below/above (excluded)")
        c_all = [e.C for e in iso.per_budget] + [p.C for p in fit.predictions]
        if exponent is not None and c_all:
            c = np.geomspace(min(c_all) / 1.5, max(c_all) * 1.5, 50)
            ax.plot(c, coef * c**exponent, "-", color="C0", alpha=0.7, label=f"{q}* ∝ C^{exponent:.3f}")
        for i, p in enumerate(targets):
            ci = p.isoflop_ci.get(q)
            value = getattr(p, f"isoflop_{q}")
            yerr = None if not ci else [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
            ax.errorbar([p.C], [value], yerr=yerr, fmt="*", ms=13, color="crimson", capsize=4, zorder=5,
                        label=None if i else "target budget (power law, 95 % interval)")
            ax.annotate(f"{value:.3g}", (p.C, value), textcoords="offset points", xytext=(7, -4), fontsize=8)
            ax.axvline(p.C, color="crimson", lw=0.6, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=ylabel)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    stars = " (★ target budgets, 95 % bootstrap interval)" if targets else ""
    fig.suptitle(f"Approach 2: compute-optimal size and tokens{stars}", fontsize=10)
    return fig
