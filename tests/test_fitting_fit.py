"""fit_table end to end: fit.json contract, warnings, bootstrap coverage, the `flops-fit fit` command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting import ScalingFit, cli, write_fit
from fitting_support import TRUE_A, TRUTH, fit_json, law, synthetic_sweep, true_optimum

PARAMS = ("E", "A", "B", "alpha", "beta", "a", "b")


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args(list(argv)))


def test_fit_json_contract_and_predictions(tmp_path):
    df = synthetic_sweep(seed=1)
    result = fit_json(df, target_budgets=[1e22, 1e24], bootstrap=60, seed=5)
    par, iso = result["parametric"], result["isoflop"]
    for name in PARAMS:
        lo, hi = par["ci"][name]
        assert lo <= par[name] <= hi
    assert set(iso) >= {"a", "b", "ci", "per_budget"} and iso["ci"]["a"][0] < iso["a"] < iso["ci"]["a"][1]
    assert [set(pb) >= {"C", "N_opt", "D_opt", "loss_opt", "interior"} for pb in iso["per_budget"]] == [True] * 7
    pred = result["predictions"][1]
    assert pred["C"] == 1e24 and pred["ci"]["N"][0] < pred["N"] < pred["ci"]["N"][1]
    assert pred["N"] * pred["D"] * 6 == pytest.approx(1e24, rel=1e-9)
    assert pred["isoflop_N"] == pytest.approx(true_optimum(1e24), rel=0.25)
    assert pred["N"] == pytest.approx(true_optimum(1e24), rel=0.25)
    assert any("1e+24 is 1000x the largest fitted budget" in w for w in result["warnings"])
    # seeded: the same seed gives the same intervals
    again = fit_json(df, target_budgets=[1e22, 1e24], bootstrap=60, seed=5)
    assert again["parametric"]["ci"] == par["ci"]
    (tmp_path / "out").mkdir()
    write_fit(ScalingFit.from_dict(result), tmp_path / "out" / "fit.json", tmp_path / "out" / "summary.tsv")
    text = (tmp_path / "out" / "fit.json").read_text()
    assert json.loads(text) == result and "NaN" not in text  # fit.json is the fit's to_dict(), exactly
    summary = pd.read_csv(tmp_path / "out" / "summary.tsv", sep="\t")
    assert float(summary.loc[summary["quantity"] == "alpha", "value"].iloc[0]) == pytest.approx(par["alpha"], rel=1e-5)
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_flop_convention_follows_the_table():
    """C = 8·N·D in the table: the frontier spends budgets as C = 8·N·D, and Approach 2 agrees."""
    df = synthetic_sweep(seed=2, k=8.0, noise=0.003)
    result = fit_json(df, target_budgets=[1e21], bootstrap=0)
    pred = result["predictions"][0]
    assert result["parametric"]["flops_per_param_token"] == pytest.approx(8.0)
    assert pred["N"] * pred["D"] * 8 == pytest.approx(1e21, rel=1e-9)
    assert pred["N"] == pytest.approx(true_optimum(1e21, k=8.0), rel=0.1)
    assert pred["isoflop_N"] == pytest.approx(pred["N"], rel=0.1)


def test_assorted_budgets_get_approach3_only_with_a_reason():
    rng = np.random.default_rng(0)
    N, D = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 80)), np.exp(rng.uniform(np.log(1e9), np.log(1e12), 80))
    df = pd.DataFrame({"N": N, "D": D, "loss": law(N, D) * np.exp(rng.normal(0, 0.005, 80))})
    result = fit_json(df, target_budgets=[1e21], bootstrap=20)
    assert result["isoflop"]["a"] is None and result["isoflop"]["skipped"].startswith("Approach 2 skipped")
    assert any(w.startswith("no isoFLOP groups: ") for w in result["warnings"])
    assert result["recommend"]["method"] == "parametric" and "Approach 2 unavailable" in result["recommend"]["reason"]
    assert result["predictions"][0]["recommended"]["N"] == result["predictions"][0]["N"]
    assert result["predictions"][0]["isoflop_N"] is None
    assert result["parametric"]["a"] == pytest.approx(TRUE_A, abs=0.02)


def test_disagreement_between_approaches_is_flagged():
    """Extra runs off the isoFLOP grids from another law (a shallower data term) pull Approach 3
    (which fits all runs) but not Approach 2 (which reads the grids): the two must be flagged."""
    df = synthetic_sweep(seed=0, noise=0.002).drop(columns="budget")
    rng = np.random.default_rng(1)
    N, D = np.exp(rng.uniform(np.log(1e7), np.log(3e8), 60)), np.exp(rng.uniform(np.log(1e11), np.log(1e12), 60))
    other = pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": law(N, D, {**TRUTH, "B": 400.0, "beta": 0.3})})
    # degree 2: the parabola's narrower intervals (these grids are wide) make the small gap significant;
    # at the largest budget (no extrapolation, no law error) the N* intervals are disjoint, while the
    # exponents' intervals (which carry the law error per e-fold) overlap
    result = fit_json(pd.concat([df, other], ignore_index=True), budgets=sorted(set(df["C"])),
                       target_budgets=[1e21], bootstrap=60, degree=2)
    assert any(w.startswith("Approach 2 and 3 disagree on N* at C=1e+21") for w in result["warnings"])
    clean = fit_json(synthetic_sweep(seed=0, noise=0.002), target_budgets=[1e21], bootstrap=60)
    assert not any("disagree" in w for w in clean["warnings"])


def test_bootstrap_intervals_cover_the_truth():
    """12 synthetic sweeps x 100 resamples: the 95% intervals of a should miss the truth rarely."""
    cover3 = cover2 = 0
    for seed in range(12):
        result = fit_json(synthetic_sweep(seed=100 + seed), bootstrap=100, seed=seed)
        lo, hi = result["parametric"]["ci"]["a"]
        cover3 += lo <= TRUE_A <= hi
        lo, hi = result["isoflop"]["ci"]["a"]
        cover2 += lo <= TRUE_A <= hi
    assert cover3 >= 10 and cover2 >= 9


@pytest.mark.slow
def test_bootstrap_coverage_study():
    """200 sweeps x 400 resamples: coverage of the nominal 95% intervals within [0.88, 0.99]."""
    hits = np.zeros((200, 2), bool)
    for seed in range(200):
        result = fit_json(synthetic_sweep(seed=1000 + seed), bootstrap=400, seed=seed)
        for j, ci in enumerate((result["parametric"]["ci"]["a"], result["isoflop"]["ci"]["a"])):
            hits[seed, j] = ci[0] <= TRUE_A <= ci[1]
    assert ((0.88 <= hits.mean(0)) & (hits.mean(0) <= 0.99)).all(), hits.mean(0)


def test_cli_writes_outputs_and_user_errors_exit_2(tmp_path, capsys):
    table = tmp_path / "runs.tsv"
    synthetic_sweep(seed=4).to_csv(table, sep="\t", index=False)
    assert run_cli(str(table), "--out", str(tmp_path / "fit"), "--bootstrap", "20", "--target-budgets", "1e22",
                   "--degree", "3") == 0
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["isoflop"]["degree"] == 3 and len(fit["predictions"]) == 1
    assert (tmp_path / "fit" / "summary.tsv").is_file()
    synthetic_sweep(seed=4).drop(columns="loss").to_csv(table, sep="\t", index=False)
    assert run_cli(str(table), "--out", str(tmp_path / "fit2")) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "missing column(s) loss" in err and "Traceback" not in err
    assert run_cli(str(tmp_path / "absent.csv"), "--out", str(tmp_path / "fit3")) == 2
    assert run_cli(str(table), "--out", str(tmp_path / "fit4"), "--target-budgets", "-1") == 2


def test_an_interval_with_an_infinite_end_is_no_interval():
    """A user's sweep whose resampled frontier ran off to infinity crashed the plot rule on [x, null]."""
    from flops_fit.fitting.bootstrap import ci_pair

    assert ci_pair(np.array([1.0, 2.0, np.inf, np.inf, np.inf])) is None
    assert ci_pair(np.array([1.0, 2.0, 3.0])) == pytest.approx([1.05, 2.95])


def test_the_sweep_fit_leaves_out_runs_whose_loss_reached_zero(tmp_path):
    """A user's task that a model solves outright (a classifier on separable data) ends runs at eval
    loss 0.0: the fit goes on without them and says why, instead of failing on a non-positive loss."""
    from flops_fit.pipeline import collect_results

    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "budget": [1e9] * 3, "size": [8, 16, 32],
                         "params": [100, 200, 400], "role": ["sweep"] * 3})
    for run_id, loss in zip(runs["run_id"], [0.7, 0.2, 0.0]):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "metrics.json").write_text(json.dumps(
            {"status": "ok", "eval_loss": loss, "tokens": 1000, "flops": 1e9}))
    results, warnings = collect_results(runs, tmp_path)
    assert list(results["run_id"]) == ["a", "b"]
    assert len(warnings) == 1 and "c excluded" in warnings[0] and "eval loss is 0" in warnings[0]


def test_a_loss_floor_is_recorded_and_bounds_every_predicted_loss():
    """TRUTH has E = 1.82; a floor of 2.0 (under every run's loss) must hold E, the bootstrap's E,
    the predicted losses with their intervals, the frontier and the backtest at or above it."""
    df = synthetic_sweep(seed=3, budgets=(1e18, 1e19, 1e20, 1e21))
    free = fit_json(df, target_budgets=[1e22, 1e24], bootstrap=40)
    assert free["parametric"]["loss_floor"] is None and free["parametric"]["E"] < 2.0
    assert free["predictions"][1]["ci"]["loss"][0] < 2.0  # without the floor the law predicts below it
    result = fit_json(df, target_budgets=[1e22, 1e24], bootstrap=40, loss_floor=2.0)
    par = result["parametric"]
    assert par["loss_floor"] == 2.0 and par["E"] == pytest.approx(2.0, rel=1e-9)
    assert par["ci"]["E"][0] >= 2.0 - 1e-9
    for p in result["predictions"]:
        assert p["loss"] >= 2.0 and p["ci"]["loss"][0] >= 2.0 - 1e-9
    assert min(result["frontier"]["loss"]) >= 2.0
    assert result["backtest"]["predicted_loss"] >= 2.0
    assert any("E sits at the loss floor 2" in w for w in result["warnings"])
    assert ScalingFit.from_dict(result).parametric.loss_floor == 2.0
    with pytest.raises(ValueError, match="loss_floor must be a positive number"):
        fit_json(df, bootstrap=0, loss_floor=-1.0)


def test_cli_loss_floor(tmp_path, capsys):
    table = tmp_path / "runs.tsv"
    synthetic_sweep(seed=4).to_csv(table, sep="\t", index=False)
    assert run_cli(str(table), "--out", str(tmp_path / "fit"), "--bootstrap", "0", "--loss-floor", "2.0",
                   "--no-plots") == 0
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["parametric"]["loss_floor"] == 2.0 and fit["parametric"]["E"] == pytest.approx(2.0)
    assert "E = 2 (loss floor 2)" in capsys.readouterr().out
    assert run_cli(str(table), "--out", str(tmp_path / "fit2"), "--loss-floor", "0", "--no-plots") == 2
    assert "loss_floor must be a positive number" in capsys.readouterr().err
