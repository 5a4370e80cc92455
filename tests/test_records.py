"""The results contract: the typed fit record and fit.json are one thing; every path has one name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fitting_support import synthetic_sweep
from flops_fit.fitting import ScalingFit, fit_table, read_fit, write_fit
from flops_fit.fitting.records import BudgetOptimum, Prediction
from flops_fit.paths import Results, run_file


@pytest.fixture(scope="module")
def fit() -> ScalingFit:
    return fit_table(synthetic_sweep(seed=4, budgets=(1e18, 1e19, 1e20)), target_budgets=[1e22], bootstrap=20)


def test_fit_json_reads_back_as_the_same_record(fit, tmp_path):
    write_fit(fit, tmp_path / "fit.json", tmp_path / "summary.tsv")
    back = read_fit(tmp_path / "fit.json")
    assert back == fit  # every field, nested records and intervals included
    assert json.loads((tmp_path / "fit.json").read_text()) == fit.to_dict()


def test_the_record_names_what_readers_use(fit):
    assert all(isinstance(e, BudgetOptimum) for e in fit.isoflop.per_budget)
    prediction = fit.prediction_at(1e22)
    assert isinstance(prediction, Prediction) and fit.prediction_at(3e22) is None
    lo, hi = prediction.ci["N"]
    assert lo < prediction.N < hi
    assert prediction.recommended.method == fit.recommend.method == "isoflop"
    par = fit.parametric
    assert par.loss(prediction.N, prediction.D) == pytest.approx(prediction.loss, rel=1e-9)
    assert fit.isoflop.N_at(1e22) == pytest.approx(prediction.isoflop_N)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.isoflop.a = 0.5  # a fit is a result: changed only by making a new one (dataclasses.replace)


def test_an_older_fit_json_without_later_keys_still_reads(fit):
    old = fit.to_dict()
    del old["N_convention"], old["noise"], old["backtest"]
    for entry in old["isoflop"]["per_budget"]:
        del entry["degree"], entry["degree_reason"]
    for p in old["predictions"]:
        del p["recommended"], p["flags"]
    back = ScalingFit.from_dict(old)
    assert back.N_convention is None and back.noise.sd is None and back.backtest.reason is None
    assert back.isoflop.per_budget[0].degree is None and back.predictions[0].recommended is None


def test_every_results_path_has_one_name(tmp_path):
    results = Results(tmp_path)
    assert results.metrics("r1") == run_file(results.runs_dir, "r1") == tmp_path / "runs" / "r1" / "metrics.json"
    assert str(Results().metrics("{run_id}")) == "results/runs/{run_id}/metrics.json"  # a rule's pattern
    named = [getattr(results, name) for name in dir(Results) if isinstance(getattr(Results, name), property)]
    assert len(set(named)) == len(named), "two names for one path"
    assert all(tmp_path in p.parents for p in named)
