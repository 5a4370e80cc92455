"""The fit's figures render to PNG and SVG from fit.json and the input table, and name only what they draw."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from flops_fit.fitting import fit_table
from flops_fit.plotting import parametric as plots
from flops_fit.plotting.isoflop import optima_figure
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
