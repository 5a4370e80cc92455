"""Verification: the recommended run's observed loss against the law's prediction (pure functions, then
the `verify` target on the `.test` sweep)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_sweep
from flops_fit.errors import ConfigError
from flops_fit.planning import read_runs_table
from fitting_support import fit_record
from flops_fit.fitting import ScalingFit
from flops_fit.pipeline import verify_plan_step, verify_step
from flops_fit.verify import (
    COLUMNS, carried_interval, check_budgets, law_loss, lines, nothing_to_verify, verification_row, verify_budgets,
)
from workflow_support import snakemake

LAW = {"E": 1.5, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def fit_dict(recommend_method: str | None = "parametric") -> ScalingFit:
    """A fit with one target budget: Approach 3's law, frontier point and interval, Approach 2's N*, D*."""
    return fit_record(
        parametric=LAW,
        predictions=[{"C": 1e13, "approach": "parametric (Approach 3)", "N": 2e6, "D": 8e7, "loss": 2.40,
                      "tokens_per_param": 40.0, "ci": {"loss": [2.30, 2.55]}, "isoflop_N": 3e6, "isoflop_D": 5.5e7}],
        recommend={"from": "parametric", "method": recommend_method, "reason": "only 1 budget has an interior minimum",
                   "add_runs": ["add sizes above d_model=48 at C=1e10"]},
        bootstrap={"ci_level": 0.95},
    )


RECOMMENDATION = {"C": 1e13, "method": "parametric", "N_star": 2e6, "N_star_isoflop": 3e6, "N_star_parametric": 2e6}
RUN = {"run_id": "C1e13_d_model96_verify", "size_param": "d_model", "size": 96, "params": 2.1e6, "tokens": 7.9e7}


def test_law_loss_is_the_parametric_formula():
    law = fit_dict().parametric
    assert law_loss(law, 2e6, 8e7) == pytest.approx(1.5 + 400 / 2e6**0.34 + 2000 / 8e7**0.28)
    assert law_loss(dataclasses.replace(law, alpha=None), 2e6, 8e7) is None  # no law fitted: nothing to predict


def test_the_interval_keeps_its_offsets_from_the_frontier_loss():
    prediction = fit_dict().predictions[0]
    assert carried_interval(prediction, 2.50) == pytest.approx((2.40, 2.65))
    assert carried_interval(dataclasses.replace(prediction, ci={"loss": None}), 2.50) == (None, None)  # bootstrap off


def test_a_verification_row_compares_observed_with_predicted():
    row = verification_row(fit_dict(), RECOMMENDATION, RUN, {"status": "ok", "eval_loss": 2.6})
    predicted = law_loss(fit_dict().parametric, RUN["params"], RUN["tokens"])
    assert set(row) == set(COLUMNS)
    assert row["predicted_loss"] == pytest.approx(predicted)
    assert row["rel_error"] == pytest.approx(2.6 / predicted - 1)
    assert row["inside_interval"] == (row["predicted_loss_lo"] <= 2.6 <= row["predicted_loss_hi"])
    # the approach that did not recommend: Approach 2's N*, D* and the law's loss there
    assert (row["other_method"], row["other_N_star"]) == ("isoflop", 3e6)
    assert row["other_predicted_loss"] == pytest.approx(law_loss(fit_dict().parametric, 3e6, 5.5e7))


def test_a_diverged_run_is_reported_not_compared():
    row = verification_row(fit_dict(), RECOMMENDATION, RUN, {"status": "diverged", "eval_loss": None})
    assert (row["observed_loss"], row["rel_error"], row["inside_interval"]) == (None, None, None)
    assert "no loss observed (run diverged)" in lines(pd.DataFrame([row], columns=COLUMNS))[0]


def test_the_default_budget_is_the_smallest_target():
    assert verify_budgets({"target_budgets": [1e14, 1e13], "verify": {"budgets": None}}) == [1e13]
    assert verify_budgets({"target_budgets": [1e14], "verify": {"budgets": [1e14]}}) == [1e14]
    assert verify_budgets({"target_budgets": [], "verify": {"budgets": None}}) == []


def test_a_verify_budget_must_be_a_target_budget():
    with pytest.raises(ConfigError, match="verify.budgets 3e\\+12 not among target_budgets"):
        check_budgets([3e12], pd.DataFrame([RECOMMENDATION]))


def test_without_a_recommendation_nothing_is_verified_and_the_reason_is_given():
    assert nothing_to_verify(fit_dict(), [1e13]) == []
    why = nothing_to_verify(fit_dict(recommend_method=None), [1e13])
    assert why[0] == "nothing to verify: only 1 budget has an interior minimum"
    assert "add sizes above" in why[1]


def test_without_a_recommendation_the_steps_plan_no_run_and_write_why(tmp_path):
    """The verify_plan and verify steps on a fit that recommends nothing: an empty plan, an empty table, the reason."""
    fit = fit_dict(recommend_method=None)
    (tmp_path / "fit.json").write_text(json.dumps(fit.to_dict()))
    pd.DataFrame(columns=["C", "size_param", "size"]).to_csv(tmp_path / "recommendations.tsv", sep="\t", index=False)
    plan, notes = verify_plan_step({}, [1e13], tmp_path / "fit.json", tmp_path / "recommendations.tsv",
                                   tmp_path / "lr.json", tmp_path / "plan.tsv")
    assert len(plan) == 0 and notes == nothing_to_verify(fit, [1e13])
    out = verify_step(tmp_path / "fit.json", tmp_path / "recommendations.tsv", tmp_path / "plan.tsv",
                      tmp_path / "runs", [1e13], tmp_path / "verify.tsv", tmp_path / "verify.html")
    assert out == notes
    assert list(pd.read_csv(tmp_path / "verify.tsv", sep="\t").columns) == COLUMNS
    assert "only 1 budget has an interior minimum" in (tmp_path / "verify.html").read_text()


# ------------------------------------------------------------------------------- the verify target
@pytest.fixture(scope="module")
def verified(test_sweep, tmp_path_factory) -> tuple[Path, float, object]:
    """A copy of the `.test` sweep after `snakemake verify`: (workdir, fit.json's mtime before, process)."""
    copy = copy_sweep(test_sweep, tmp_path_factory.mktemp("verify") / "v")
    fit_mtime = (copy / "results/fit/fit.json").stat().st_mtime
    result = snakemake(copy, "verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return copy, fit_mtime, result


def test_verify_trains_the_recommended_run_and_compares(verified):
    copy, _, result = verified
    table = pd.read_csv(copy / "results/verify/verify.tsv", sep="\t")
    recommendation = pd.read_csv(copy / "results/fit/recommendations.tsv", sep="\t").iloc[0]
    assert list(table.columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row["C"], row["size"]) == (recommendation["C"], recommendation["size"])
    assert row["status"] == "ok" and math.isfinite(row["observed_loss"])
    assert row["rel_error"] == pytest.approx(row["observed_loss"] / row["predicted_loss"] - 1)
    assert bool(row["inside_interval"]) == (row["predicted_loss_lo"] <= row["observed_loss"] <= row["predicted_loss_hi"])
    metrics = json.loads((copy / "results/runs" / row["run_id"] / "metrics.json").read_text())
    assert metrics["eval_loss"] == pytest.approx(row["observed_loss"])
    assert "flops-fit: verify C = 1e+11" in result.stderr  # the console, at the end
    assert "observed loss" in (copy / "results/verify/verify.html").read_text()


def test_the_verify_run_is_planned_with_the_sweep_recipe_but_never_fitted(verified):
    copy, fit_mtime, _ = verified
    run = read_runs_table(copy / "results/verify/plan.tsv").iloc[0]
    sweep = read_runs_table(copy / "results/plan/runs.tsv")
    assert run["role"] == "verify" and run["run_id"] not in set(sweep["run_id"])
    assert run["steps"] == 60 and abs(run["achieved_flops"] / run["budget"] - 1) < 0.01  # the .test recipe
    law = json.loads((copy / "results/plan/lr_calibration.json").read_text())
    assert run["lr"] == pytest.approx(law["coefficient"] * run["params"] ** law["exponent"])
    assert (copy / "results/fit/fit.json").stat().st_mtime == fit_mtime  # the fit was not rerun


def test_a_second_verify_trains_nothing(verified):
    copy, _, _ = verified
    result = snakemake(copy, "verify")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_the_default_target_does_not_verify(test_sweep):
    assert not (test_sweep / "results/verify").exists()
