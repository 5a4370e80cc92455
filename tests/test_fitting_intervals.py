"""Prediction intervals: what they are made of, the rolling backtest's folds and verdict, and the
cases where the fit must say it cannot give an interval (issue: calibrated uncertainty)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.intervals import PRIOR, LawError
from fitting_support import TRUTH, fit_json, law, synthetic_sweep, true_optimum


def test_every_prediction_interval_names_its_parts_and_the_law_error_grows_with_distance():
    fit = fit_json(synthetic_sweep(seed=2, noise=0.005), target_budgets=[1e21, 1e22, 1e23], bootstrap=300)
    u = fit["uncertainty"]
    assert set(u["law_error"]) == {"N", "loss"} and u["law_error"]["N"]["folds"] == 5
    widths = []
    for p in fit["predictions"]:
        parts = p["interval_parts"]
        assert set(parts) >= {"N", "loss", "isoflop_N"}
        assert parts["loss"]["noise_sd"] > 0  # a loss a run will show carries one run's noise
        lo, hi = p["recommended"]["ci"]["N"]
        assert lo < p["recommended"]["N"] < hi
        widths.append((parts["isoflop_N"]["law_sd"], hi / lo))
    assert widths[0][0] == 0.0  # 1e21 is the largest fitted budget: no extrapolation, no law error
    assert widths[0][0] < widths[1][0] < widths[2][0] and widths[0][1] < widths[1][1] < widths[2][1]


def test_the_rolling_backtest_predicts_every_budget_it_can_with_an_interval_and_a_verdict():
    fit = fit_json(synthetic_sweep(seed=5, noise=0.005), bootstrap=300)
    bt = fit["backtest"]
    assert [f["C"] for f in bt["folds"]] == [1e19, 3e19, 1e20, 3e20, 1e21]  # 2 budgets below at least
    assert bt["held_out_budget"] == 1e21 and bt["N_ci"] == bt["folds"][-1]["N_ci"]
    assert all(f["N_inside"] is not None for f in bt["folds"])
    # Approach 3 needs 3 budgets below: the first fold has no loss prediction
    assert bt["folds"][0]["predicted_loss"] is None and bt["folds"][1]["loss_inside"] is not None
    last = bt["folds"][-1]
    assert bt["passed"] is (last["N_inside"] and last["loss_inside"])
    assert bt["folds_inside"]["N"] == [sum(f["N_inside"] for f in bt["folds"]), 5]
    assert bt["folds_inside"]["N"][0] >= 4 and bt["folds_inside"]["loss"][0] >= 3  # a known law: mostly inside


def test_a_budget_whose_optimum_jumps_fails_the_backtest_and_the_recommendation_says_so():
    df = synthetic_sweep(seed=1, noise=0.002)
    top = df["budget"] == df["budget"].max()
    # the largest budget's profile moved to 2.5x larger N: a law that bends at the top of the sweep
    df.loc[top, "N"] *= 2.5
    df.loc[top, "D"] = df.loc[top, "C"] / (6 * df.loc[top, "N"])
    fit = fit_json(df, target_budgets=[1e22], bootstrap=300)
    assert fit["backtest"]["passed"] is False and fit["backtest"]["folds"][-1]["N_inside"] is False
    assert any(flag.startswith("backtest failed") for flag in fit["predictions"][0]["flags"])
    assert fit["uncertainty"]["law_error"]["N"]["tau_from_folds"] > PRIOR["lnN"][0]


def test_the_law_error_estimate_pools_excess_squared_errors_with_a_weak_prior():
    none = LawError.measure("lnN", [], [], [])
    assert none.tau == pytest.approx(PRIOR["lnN"][0]) and none.folds == 0
    # errors exactly as large as their own noise: no excess, the prior is shrunk toward 0
    quiet = LawError.measure("lnN", [0.1, -0.1], [0.01, 0.01], [1.0, 1.0])
    assert quiet.tau_folds == pytest.approx(0.0, abs=1e-6) and quiet.tau < PRIOR["lnN"][0]
    loud = LawError.measure("lnN", [0.5, -0.5], [0.01, 0.01], [1.0, 1.0])
    assert loud.tau_folds == pytest.approx(np.sqrt(0.24), rel=1e-6) and loud.tau > PRIOR["lnN"][0]
    draws = loud.draws(np.random.default_rng(0), 20000)
    assert np.median(draws) == pytest.approx(loud.tau, rel=0.2)


def test_profiles_too_flat_to_place_the_optimum_give_no_interval_and_say_what_to_add():
    rng = np.random.default_rng(0)
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21):
        for N in true_optimum(C) * np.geomspace(0.7, 1.4, 5):  # a narrow window: the profile is flat
            D = C / (6 * N)
            rows.append({"N": N, "D": D, "C": C, "budget": C, "loss": law(N, D) * np.exp(rng.normal(0, 0.01))})
    fit = fit_json(pd.DataFrame(rows), target_budgets=[1e22], bootstrap=200)
    iso = fit["isoflop"]
    if iso["a"] is None:  # the point fit refused the budgets outright: also no interval
        assert fit["predictions"][0]["isoflop_ci"]["N"] is None
        return
    assert iso["no_interval"] and "add sizes" in iso["no_interval"] and iso["ci"]["a"] is None
    assert fit["predictions"][0]["isoflop_ci"]["N"] is None
    assert any("no interval" in w for w in fit["warnings"])


def test_a_fitted_minimum_below_every_run_of_its_budget_is_flagged():
    """A profile that drops sharply and then flattens (a ViT on tiny images): a parabola's vertex lies
    far below every run."""
    df = synthetic_sweep(seed=0, noise=0.002, budgets=(1e18, 1e19, 1e20))
    sharp = np.array([2.3, 1.2, 0.75, 0.66, 0.67, 0.70, 0.72, 0.75, 0.8])
    df.loc[df["budget"] == 1e19, "loss"] = sharp
    fit = fit_json(df, bootstrap=0)
    entry = next(e for e in fit["isoflop"]["per_budget"] if e["C"] == 1e19)
    assert entry["below_runs"] is True and entry["loss_opt"] < 0.99 * sharp.min()
    assert any("lies below every run" in w for w in fit["warnings"])
    assert not any(e["below_runs"] for e in fit["isoflop"]["per_budget"] if e["C"] != 1e19)


def test_an_exponent_whose_interval_crosses_zero_is_a_warning():
    """N* that does not grow with C (a sweep whose windows sit still): a near 0, interval across 0."""
    rng = np.random.default_rng(3)
    rows = []
    for C in (1e18, 3e18, 1e19, 3e19):
        for N in 3e8 * np.geomspace(1 / 8, 8, 7):
            D = C / (6 * N)
            loss = 2.0 + 0.05 * np.log(N / 3e8) ** 2 + rng.normal(0, 0.01)
            rows.append({"N": N, "D": D, "C": C, "budget": C, "loss": loss})
    fit = fit_json(pd.DataFrame(rows), bootstrap=300)
    lo, hi = fit["isoflop"]["ci"]["a"]
    assert lo < 0 < hi
    assert any("interval of a" in w and "crosses 0" in w for w in fit["warnings"])


def test_a_loss_floor_bounds_every_loss_interval():
    floor = TRUTH["E"] + 0.2  # above the truth's E: the law is pushed against it
    fit = fit_json(synthetic_sweep(seed=4, noise=0.005), target_budgets=[1e22, 1e24], bootstrap=200,
                   loss_floor=floor)
    for p in fit["predictions"]:
        assert p["loss"] >= floor - 1e-9 and p["ci"]["loss"][0] >= floor - 1e-9
