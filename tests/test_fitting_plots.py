"""The fit's figures render to PNG and SVG from fit.json and the input table, and name only what they draw."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

from flops_fit.fitting import fit_table
from flops_fit.plotting import parametric as plots
from flops_fit.plotting.isoflop import isoflops_figure, optima_figure
from flops_fit.plotting.style import plt
from fitting_support import synthetic_sweep


@pytest.mark.parametrize("bootstrap", [30, 0])
def test_every_figure_is_written_as_png_and_svg(tmp_path, bootstrap):
    table = synthetic_sweep(seed=0)
    fit = fit_table(table, target_budgets=[1e22], bootstrap=bootstrap)
    for name in ("plot_contours", "plot_frontier", "plot_residuals", "plot_ratio_fan"):
        paths = getattr(plots, name)(fit, table, tmp_path / name)
        assert [p.name for p in paths] == [f"{name}.png", f"{name}.svg"]
        assert all(p.stat().st_size > 5000 for p in paths)
        assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:2000]


def figure_texts(fig: Figure) -> list[str]:
    """Every text of a figure (titles, labels, legends, annotations), then the figure is closed."""
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
    plt.close(fig)
    return texts


@pytest.mark.parametrize("targets", [[], [1e22]])
def test_figures_name_target_budgets_only_when_there_are_some(targets):
    table = synthetic_sweep(seed=0, budgets=(1e18, 1e19, 1e20))
    fit = fit_table(table, target_budgets=targets, bootstrap=0)
    for texts in (figure_texts(plots.frontier_figure(fit, table)), figure_texts(optima_figure(fit))):
        assert any("largest fitted C" in t or "compute-optimal size" in t for t in texts)
        named = [t for t in texts if "target" in t.lower()]
        assert bool(named) == bool(targets), named


def refused_far_outside(vertex_factor: float):
    """A real fit, its smallest budget's optimum replaced by a refused one whose vertex lies
    ``vertex_factor`` times below the smallest size trained (a flat profile's vertex)."""
    table = synthetic_sweep(seed=0, budgets=(1e18, 1e19, 1e20))
    fit = fit_table(table, bootstrap=0)
    first = fit.isoflop.per_budget[0]
    assert first.N_range is not None
    n_opt = min(first.N_range) / vertex_factor
    refused = dataclasses.replace(first, N_opt=n_opt, D_opt=first.C / (first.k * n_opt), interior=False,
                                  reason="profile minimum below the smallest size trained", sd_lnN_opt=0.5)
    iso = dataclasses.replace(fit.isoflop, per_budget=(refused, *fit.isoflop.per_budget[1:]))
    return table, dataclasses.replace(fit, isoflop=iso), refused


def within(values, n_range) -> bool:
    lo, hi = min(n_range), max(n_range)
    return all(lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) for v in np.asarray(values, float).ravel())


def test_a_refused_vertex_far_outside_is_drawn_at_the_edge_of_the_sizes_trained():
    table, fit, refused = refused_far_outside(40)
    # isoFLOP profiles: every artist of that budget (runs, curve, its minimum's marker) within N_range
    fig = isoflops_figure(fit, table)
    ax = fig.axes[0]
    mine = [line for line in ax.get_lines() if line.get_gid() == f"C={refused.C:g}"]
    assert len(mine) == 3  # runs, curve, the edge marker
    for line in mine:
        assert within(line.get_xdata(), refused.N_range), (line.get_marker(), line.get_xdata())
    assert any(line.get_marker() == "<" for line in mine)  # "beyond, below": at the smallest size
    assert min(ax.get_xlim()) > min(refused.N_range) / 3  # the axis is not stretched toward the vertex
    texts = figure_texts(fig)
    assert any("beyond the sizes trained" in t for t in texts)
    # optima against C: N* of that budget (points and bars) within N_range
    fig = optima_figure(fit)
    ax = fig.axes[0]
    ys = [y for line in ax.get_lines() for x, y in zip(np.atleast_1d(line.get_xdata()), np.atleast_1d(line.get_ydata()))
          if np.isclose(float(x), refused.C)]
    ys += [y for coll in ax.collections if isinstance(coll, LineCollection)
           for seg in coll.get_segments() for x, y in seg if np.isclose(x, refused.C)]
    assert ys and within(ys, refused.N_range), ys
    texts = figure_texts(fig)
    assert any("beyond the sizes trained" in t for t in texts)


def test_a_refused_vertex_inside_the_sizes_is_still_drawn_hollow_where_it_is():
    table, fit, refused = refused_far_outside(1 / 2)  # vertex at twice the smallest size: inside
    ax = isoflops_figure(fit, table).axes[0]
    marker = [line for line in ax.get_lines() if line.get_gid() == f"C={refused.C:g}" and line.get_marker() == "*"]
    assert len(marker) == 1 and np.isclose(marker[0].get_xdata()[0], refused.N_opt)
    assert marker[0].get_markerfacecolor() == "none"  # hollow
    assert not any("beyond the sizes trained" in t for t in figure_texts(ax.figure))
