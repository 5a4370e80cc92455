"""The Approach-2 figures and the loss curves show what they claim: one entry per budget, labelled axes
with units, the target budgets; read from the SVG text (written as text, not paths, for the check)."""

from __future__ import annotations


import matplotlib
import pandas as pd
import pytest

from flops_fit.fitting import fit_table
from flops_fit.plotting.curves import plot_loss_curves
from flops_fit.plotting.isoflop import plot_isoflops, plot_optima
from fitting_support import synthetic_sweep

BUDGETS = (1e18, 1e19, 1e20)


@pytest.fixture(scope="module")
def sweep():
    table = synthetic_sweep(seed=0, budgets=BUDGETS, sizes=7)
    fit = fit_table(table, target_budgets=[1e22], bootstrap=20)
    return fit, table


def test_isoflops_one_entry_per_budget_and_units(sweep, tmp_path):
    fit, table = sweep
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        png, svg = plot_isoflops(fit, table, tmp_path / "iso")
    text = svg.read_text()
    assert png.stat().st_size > 10_000
    for budget in BUDGETS:
        assert f"C = {budget:.2g} FLOPs" in text
    assert "parameters N (count)" in text and "held-out loss" in text  # a table of unknown N convention
    assert text.count("N* = ") == sum(b.interior for b in fit.isoflop.per_budget) == len(BUDGETS)


def test_optima_mark_the_target_budget_with_its_interval(sweep, tmp_path):
    fit, _ = sweep
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        _, svg = plot_optima(fit, tmp_path / "optima")
    text = svg.read_text()
    prediction = fit.predictions[0]
    assert f"{prediction.isoflop_N:.3g}" in text and f"{prediction.isoflop_D:.3g}" in text
    assert "training compute C (FLOPs)" in text and "N* ∝ C^" in text


def test_loss_curves_one_panel_per_budget_one_colour_per_size(tmp_path):
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c"], "budget": [1e10, 1e10, 3e10], "size_param": "d_model",
        "size": [8, 16, 8], "params": [100, 300, 100],
    })
    for i, run_id in enumerate(runs["run_id"]):
        (tmp_path / run_id).mkdir()
        pd.DataFrame({"step": [1, 2, 3], "tokens": [10, 20, 30], "lr": 0.1,
                      "train_loss": [4.0, 3.0 - i / 10, 2.5 - i / 10], "eval_loss": [None, None, 2.6]}).to_csv(
            tmp_path / run_id / "curve.tsv", sep="\t", index=False)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        _, svg = plot_loss_curves(runs, tmp_path, tmp_path / "curves")
    text = svg.read_text()
    assert "C = 1e+10 FLOPs" in text and "C = 3e+10 FLOPs" in text
    assert text.count("d_model = 8 (N = 1e+02)") == 2 and "tokens seen (count)" in text
