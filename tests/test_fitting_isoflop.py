"""Approach 2: profile minima, refusal of edge minima, Porian et al.'s exponents, synthetic recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting import isoflop
from fitting_support import TRUE_A, data_file, fit_json, synthetic_sweep

ONE = np.ones((1, 7))


@pytest.mark.parametrize("degree", [2, 3])
def test_profile_minimum_of_an_exact_polynomial(degree):
    x = np.linspace(17, 21, 7)
    loss = 3 + 0.2 * (x - 19.3) ** 2 + (0.03 * (x - 19.3) ** 3 if degree == 3 else 0)
    fit = isoflop.fit_profile(x, loss, ONE, degree, with_sigma=True)
    assert fit.interior[0] and fit.lnN[0] == pytest.approx(19.3, abs=1e-9) and fit.loss[0] == pytest.approx(3.0)
    assert fit.sigma[0] == isoflop.SIGMA_FLOOR  # exact points: no error beyond the floor


def test_edge_and_outside_minima_are_refused_with_reasons():
    x = np.linspace(17, 21, 7)
    outside = isoflop.fit_profile(x, 3 + 0.2 * (x - 22) ** 2, ONE)
    assert not outside.interior[0] and "not bracket" in outside.reason[0]
    concave = isoflop.fit_profile(x, 3 - 0.1 * (x - 19) ** 2, ONE)
    assert not concave.interior[0] and concave.reason[0] == "profile has no minimum (not convex)"
    few = isoflop.fit_profile(x[:3], (3 + (x - 19) ** 2)[:3], np.ones((1, 3)))
    assert not few.interior[0] and "fewer than 4 distinct sizes" in few.reason[0]


def test_power_law_is_weighted_by_the_optimum_uncertainty():
    lnC = np.log([1e18, 1e19, 1e20])
    lnN = 0.5 * lnC - 3 + np.array([0.0, 0.0, 0.3])  # the last optimum is off the line ...
    slope, _ = isoflop.power_law(lnC, lnN[None], np.array([0.01, 0.01, 1.0]), np.ones((1, 3), bool))
    assert slope[0] == pytest.approx(0.5, abs=2e-3)  # ... but uncertain, so it barely moves the fit
    slope, _ = isoflop.power_law(lnC, lnN[None], np.ones(3), np.array([[True, False, False]]))
    assert np.isnan(slope[0])  # one budget cannot give a slope


def test_synthetic_truth_recovered_by_both_approaches():
    result = fit_json(synthetic_sweep(seed=3, noise=0.005), bootstrap=50)
    assert result["isoflop"]["a"] == pytest.approx(TRUE_A, abs=0.02)
    assert result["parametric"]["a"] == pytest.approx(TRUE_A, abs=0.02)
    assert all(pb["interior"] for pb in result["isoflop"]["per_budget"])


def porian(**config: str) -> pd.DataFrame:
    points = pd.read_csv(data_file("porian2024_isoflop_points.csv"))
    keep = np.logical_and.reduce([points[k] == v for k, v in config.items()])
    sub = points[keep]
    assert len(sub) > 100
    return pd.DataFrame({"N": sub["n"], "D": sub["t"], "loss": sub["loss"], "C": sub["flops"], "budget": sub["flops"]})


TUNED = dict(source_file="summary_df", dataset="rw", hparams="tuned", warmup="short", decay="const",
             param_count="standard", loss_split="val")
KAPLAN = dict(source_file="summary_df", dataset="rw", hparams="base", warmup="long", decay="kaplan",
              param_count="kaplan", loss_split="train")


@pytest.mark.parametrize("config,published,degree", [(TUNED, 0.497, 3), (TUNED, 0.497, 2), (KAPLAN, 0.834, 3)])
def test_porian_approach2_exponents(config, published, degree):
    """Porian et al. 2024 (RefinedWeb): tuned hparams, constant LR a=0.497; Kaplan reproduction a=0.834.

    Their sweeps are wide (up to 16 sizes) and the small-budget profiles skewed: the cubic matches
    both; the parabola matches the tuned configuration only (0.770 on the Kaplan one, 3 budgets
    refused: the parabola bias of wide grids).
    """
    result = fit_json(porian(**config), bootstrap=0, degree=degree)
    assert result["isoflop"]["a"] == pytest.approx(published, abs=0.012)


def test_one_degree_for_the_sweep_chosen_by_its_later_rolling_origin_errors():
    """Porian et al.'s tuned sweep (wide grids, skewed small budgets): predicting each budget from the
    budgets below, the parabola's later errors are -0.15 to -0.2 in ln N* and the cubic's about 0.05,
    so the whole sweep takes the cubic (a = 0.497 published). The Kaplan reproduction keeps the
    parabola: it predicts its later budgets as well as the cubic does."""
    tuned = fit_json(porian(**TUNED), bootstrap=0)["isoflop"]
    assert tuned["degree"] == "auto" and tuned["degree_used"] == 3 and tuned["degree_reason"].startswith("cubic: ")
    assert {pb["degree"] for pb in tuned["per_budget"]} == {3}
    assert tuned["a"] == pytest.approx(0.497, abs=0.03)
    ev = tuned["degree_evidence"]
    assert ev["3"]["late_median_abs_error_lnN"] <= 0.7 * ev["2"]["late_median_abs_error_lnN"]
    kaplan = fit_json(porian(**KAPLAN), bootstrap=0)["isoflop"]
    assert kaplan["degree_used"] == 2 and kaplan["degree_reason"].startswith("parabola: ")
    assert {pb["degree"] for pb in kaplan["per_budget"]} == {2}


def test_a_sweep_with_a_budget_of_few_sizes_keeps_the_parabola():
    df = synthetic_sweep(seed=3, sizes=9)
    few = df[(df["budget"] != df["budget"].min()) | (df.index % 2 == 0)]
    iso = fit_json(few, bootstrap=0)["isoflop"]
    assert iso["degree_used"] == 2 and "5 distinct sizes" in iso["degree_reason"]
