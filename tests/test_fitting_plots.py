"""The Approach-3 figures render to PNG and SVG from fit.json and the input table."""

from __future__ import annotations


import pytest

from flops_fit.fitting import fit_table
from flops_fit.plotting import parametric as plots
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
