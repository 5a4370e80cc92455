"""The fit in words and in summary.tsv: numbers stay in numeric columns, no message says its subject twice."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from flops_fit.fitting import ScalingFit, fit_table, write_fit
from flops_fit.fitting.summary import summary_lines
from flops_fit.report_page import recipe_notes
from fitting_support import synthetic_sweep, true_optimum

#: summary.tsv's text columns; every other column must read back as numbers
TEXT_COLUMNS = {"section", "quantity", "note"}


@functools.cache
def skipped_fit() -> ScalingFit:
    """A real fit whose Approach 2 is skipped: of three budgets only the smallest brackets its optimum
    (the others keep only sizes below N*), so budgets are refused and warnings written."""
    df = synthetic_sweep(budgets=(1e18, 1e19, 1e20))
    below = df["N"] < np.array([true_optimum(c) for c in df["budget"]])
    return fit_table(df[(df["budget"] == 1e18) | below].reset_index(drop=True), target_budgets=[1e21],
                     bootstrap=20)


def test_summary_tsv_keeps_numbers_in_numeric_columns_and_text_in_note(tmp_path):
    fit = skipped_fit()
    assert fit.isoflop.a is None and any(not pb.interior for pb in fit.isoflop.per_budget)
    write_fit(fit, tmp_path / "fit.json", tmp_path / "summary.tsv")
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert set(summary.columns) >= TEXT_COLUMNS | {"value", "ci_lo", "ci_hi"}
    for column in set(summary.columns) - TEXT_COLUMNS:
        assert pd.api.types.is_numeric_dtype(summary[column]), f"{column}: {summary[column].tolist()}"
    notes = summary.set_index(["section", "quantity"])["note"]
    assert notes["isoflop", "a"] == fit.isoflop.skipped
    assert notes["isoflop_budget"].str.startswith("refused: ").sum() == 2
    assert summary.loc[summary["section"] == "warning", "note"].tolist() == list(fit.warnings)
    ci = summary.set_index("quantity").loc["alpha", ["ci_lo", "ci_hi"]]
    assert ci.notna().all() and ci["ci_lo"] < ci["ci_hi"]


def test_no_summary_line_names_approach_2_twice():
    lines = summary_lines(skipped_fit())
    assert any(line.startswith("Approach 2 skipped") for line in lines)
    assert [line for line in lines if line.count("Approach 2") > 1] == []


def test_the_recipe_notes_name_the_lr_calibration_once():
    calibration = {"enabled": True, "coefficient": 0.02, "exponent": -0.3,
                   "per_size": [{"params": 1e5, "best_lr": 3e-3, "at_edge": True}],
                   "warnings": ["lr calibration at d_model=16 (N=1e+05): the best lr 0.003 is the largest tried",
                                "the best lr of one size could not be read"]}
    notes = recipe_notes(calibration, skipped_fit())
    assert "lr calibration at d_model=16 (N=1e+05): the best lr 0.003 is the largest tried" in notes
    assert "lr calibration: the best lr of one size could not be read" in notes
    assert [note for note in notes if note.count("lr calibration") > 1] == []
