"""Answers users can trust (issue 10) and a fit command that works the first time (issue 14):
backtest, recommendation basis and cautions, noise floor, Huber delta, N labels, and the real
`flops-fit fit` CLI (plots, grouping, named dropped budgets, readable exponents)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flops_fit.fitting import ScalingFit, advice
from flops_fit.plotting import isoflop as isoflop_plots
from flops_fit.plotting.style import n_label
from fitting_support import data_file, fit_json, synthetic_sweep, true_optimum

ROOT = Path(__file__).resolve().parents[1]


def flops_fit_cli(*argv: str) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process, importing this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "flops_fit", "fit", *argv], capture_output=True, text=True,
                          env=env, timeout=300)


# ------------------------------------------------------------------------------------------ backtest
def test_backtest_predicts_the_held_out_largest_budget():
    result = fit_json(synthetic_sweep(seed=3, noise=0.003), bootstrap=0)
    bt = result["backtest"]
    assert bt["reason"] is None and bt["held_out_budget"] == 1e21
    assert bt["observed_N_opt"] == result["isoflop"]["per_budget"][-1]["N_opt"]
    assert bt["predicted_N_opt"] == pytest.approx(true_optimum(1e21), rel=0.15)
    assert bt["N_opt_ratio"] == pytest.approx(bt["predicted_N_opt"] / bt["observed_N_opt"])
    assert bt["predicted_loss"] == pytest.approx(bt["observed_loss"], rel=0.01)
    assert set(bt["approach"]) == {"N_opt", "loss"}


def test_backtest_is_null_with_a_reason_when_impossible():
    two = fit_json(synthetic_sweep(seed=3, budgets=(1e19, 1e20)), bootstrap=0)["backtest"]
    assert two["predicted_N_opt"] is None and "a backtest needs 3" in two["reason"]
    df = synthetic_sweep(seed=3)
    top = df["budget"] == 1e21
    df = df[~top | (df["N"] < true_optimum(1e21))]  # the largest budget's optimum above its sizes
    edge = fit_json(df, bootstrap=0)["backtest"]
    assert edge["held_out_budget"] == 1e21 and edge["observed_N_opt"] is None
    assert "has no interior optimum" in edge["reason"]


# ------------------------------------------------------------------------------------ recommendation
def test_recommendation_comes_from_the_isoflop_frontier_with_approach3_beside_it():
    df = synthetic_sweep(seed=1, noise=0.003)
    result = fit_json(df, target_budgets=[1e22, 1e25], bootstrap=30)
    assert result["recommend"] == {"from": "isoflop", "method": "isoflop", "reason": None, "add_runs": []}
    near, far = result["predictions"]
    assert near["recommended"]["method"] == "isoflop" and near["recommended"]["N"] == near["isoflop_N"]
    assert near["recommended"]["ci"] == near["isoflop_ci"] and near["flags"] == []
    assert any("extrapolated 10000x" in f for f in far["flags"])
    parametric = fit_json(df, target_budgets=[1e22], bootstrap=0, recommend_from="parametric")
    assert parametric["predictions"][0]["recommended"]["N"] == parametric["predictions"][0]["N"]


def test_cautions_for_disagreement_and_odd_tokens_per_parameter():
    entry = {"N": 1e9, "D": 2e9, "isoflop_N": 2e9, "isoflop_D": 1e9, "isoflop_ci": {"N": None, "D": None},
             "ci": {"N": None, "D": None}, "extrapolation_factor": 3.0}
    choice = {"from": "isoflop", "method": "isoflop", "reason": None, "add_runs": []}
    advice.annotate([entry], choice)
    assert entry["recommended"]["tokens_per_param"] == 0.5
    assert entry["flags"][0].startswith("Approach 2 and 3 differ by 2.0x on N*")
    assert "0.5 tokens per parameter is outside [1, 1000]" in entry["flags"][1]


def test_without_two_interior_budgets_nothing_is_recommended_and_the_runs_to_add_are_named():
    df = synthetic_sweep(seed=2, budgets=(1e19, 1e20, 1e21))
    df = df[df["N"] < df["budget"].map(true_optimum) / 1.5]  # every optimum above the largest size
    result = fit_json(df, target_budgets=[1e22], bootstrap=0)
    choice = result["recommend"]
    assert choice["method"] is None and choice["reason"].startswith("no recommendation: 0 of 3")
    assert len(choice["add_runs"]) == 3 and all("add sizes above N=" in a for a in choice["add_runs"])
    assert "lowest loss at the largest size" in choice["add_runs"][0]
    assert result["predictions"][0]["recommended"] is None


# ----------------------------------------------------------------------------------- noise, replicates
def test_noise_sd_floors_the_vertex_error_and_replicates_are_kept():
    df = synthetic_sweep(seed=4, noise=0.001)
    replicates = pd.concat([df, synthetic_sweep(seed=5, noise=0.001)], ignore_index=True)
    plain = fit_json(replicates, bootstrap=0)
    noisy = fit_json(replicates, bootstrap=0, noise_sd=0.02)
    assert plain["n_runs"] == 2 * len(df) and plain["isoflop"]["per_budget"][0]["n_runs"] == 18
    assert plain["isoflop"]["per_budget"][0]["n_sizes"] == 9
    assert plain["noise"] == {"sd": None, "source": None} and noisy["noise"] == {"sd": 0.02, "source": "given"}
    for a, b in zip(plain["isoflop"]["per_budget"], noisy["isoflop"]["per_budget"]):
        assert b["sd_lnN_opt"] > 1.5 * a["sd_lnN_opt"]  # a above-floor vertex error, from the noise
    with pytest.raises(ValueError, match="noise_sd"):
        fit_json(df, bootstrap=0, noise_sd=-1.0)


# --------------------------------------------------------------------------------- Huber delta, labels
def test_huber_delta_reaches_the_objective_and_fit_json():
    df = synthetic_sweep(seed=6, noise=0.01)
    default = fit_json(df, bootstrap=0)["parametric"]
    small = fit_json(df, bootstrap=0, huber_delta=1e-4)["parametric"]
    assert default["huber_delta"] == 1e-3 and small["huber_delta"] == 1e-4
    assert small["objective"] < default["objective"] / 5  # the loss is linear beyond a smaller delta
    with pytest.raises(ValueError, match="huber_delta"):
        fit_json(df, bootstrap=0, huber_delta=0.0)


def test_the_n_axis_says_what_the_table_counts(tmp_path, monkeypatch):
    df = synthetic_sweep(seed=0, budgets=(1e18, 1e19, 1e20))
    labels = []
    monkeypatch.setattr(isoflop_plots, "save", lambda fig, stem: labels.append(fig.axes[0].get_xlabel()) or [])
    for convention in (None, "non-embedding"):
        fit = ScalingFit.from_dict(fit_json(df, bootstrap=0, n_convention=convention))
        isoflop_plots.plot_isoflops(fit, df, tmp_path / "isoflops")
    assert labels == ["parameters N (count)", "parameters N (non-embedding) (count)"]
    old = fit_json(df, bootstrap=0)
    del old["N_convention"]
    assert n_label(ScalingFit.from_dict(old)) == "parameters N"  # a fit.json from before the key


# --------------------------------------------------------------------------------------- the fit CLI
@pytest.fixture(scope="module")
def sweep_table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    synthetic_sweep(seed=7, budgets=(1e18, 1e19, 1e20)).to_csv(path, index=False)
    return path


def test_cli_writes_the_plot_rules_figures_and_prints_readable_exponents(sweep_table, tmp_path):
    done = flops_fit_cli(str(sweep_table), "--out", str(tmp_path / "fit"), "--bootstrap", "30",
                         "--target-budgets", "1e21")
    assert done.returncode == 0, done.stderr
    names = {p.name for p in (tmp_path / "fit" / "plots").iterdir()}
    assert names == {f"{stem}.{ext}" for stem in ("isoflops", "optima", "frontier", "contours", "residuals",
                                                  "ratio_fan") for ext in ("png", "svg")}
    out = done.stdout
    assert "isoFLOP groups: from the budget column (3 budgets)" in out
    assert re.search(r"Approach 2 \(.*\): a = 0\.\d{3} \[0\.\d{2,4}, 0\.\d{2,4}\], b = 0\.\d{3} \[", out)
    assert re.search(r"Approach 3 \(.*Huber delta 0\.001\): a = 0\.\d{3} \[0\.\d{2,4}, 0\.\d{2,4}\]", out)
    assert not re.search(r"\d\.\d{7,}", out), out  # no 17-digit floats
    assert "backtest (largest budget C=1e20 predicted from the budgets below)" in out and "from the isoFLOP frontier (Approach 2)" in out
    skipped = flops_fit_cli(str(sweep_table), "--out", str(tmp_path / "fit2"), "--bootstrap", "0", "--no-plots",
                            "--degree", "2", "--huber-delta", "1e-4")
    assert skipped.returncode == 0 and not (tmp_path / "fit2" / "plots").exists()
    fit = json.loads((tmp_path / "fit2" / "fit.json").read_text())
    assert fit["parametric"]["huber_delta"] == 1e-4 and fit["isoflop"]["degree"] == 2
    assert {pb["degree"] for pb in fit["isoflop"]["per_budget"]} == {2}


def test_cli_says_where_the_groups_came_from(sweep_table, tmp_path):
    table = pd.read_csv(sweep_table).drop(columns="budget")
    table.to_csv(tmp_path / "no_budget.csv", index=False)
    done = flops_fit_cli(str(tmp_path / "no_budget.csv"), "--out", str(tmp_path / "fit"), "--bootstrap", "0",
                         "--no-plots")
    assert done.returncode == 0 and "isoFLOP groups: from separated C values (3 budgets)" in done.stdout


def test_cli_on_checkpoints_of_no_isoflop_design_reports_approach3_alone(tmp_path):
    """The (Mis)Fitting table holds every checkpoint of runs with several learning rates: C values
    coincide here and there by chance, which is no isoFLOP design."""
    done = flops_fit_cli(str(data_file("misfitting_scaling_results_all_ckpts.csv")), "--out", str(tmp_path / "fit"),
                         "--bootstrap", "10", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert "isoFLOP groups: none" in done.stdout and "warning: no isoFLOP groups" in done.stderr
    assert "\nApproach 2 skipped: the runs form no isoFLOP groups" in done.stdout
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["isoflop"]["a"] is None and fit["isoflop"]["per_budget"] == [] and fit["isoflop"]["grouping"] is None


def test_cli_names_every_dropped_budget_with_its_reason(sweep_table, tmp_path):
    table = pd.read_csv(sweep_table)
    small = table[table["budget"] == 1e18].sort_values("N").iloc[2:6]  # 4 sizes around the optimum
    pd.concat([table[table["budget"] != 1e18], small]).to_csv(tmp_path / "t.csv", index=False)
    done = flops_fit_cli(str(tmp_path / "t.csv"), "--out", str(tmp_path / "fit"), "--bootstrap", "0",
                         "--no-plots", "--degree", "3")
    assert done.returncode == 0, done.stderr
    assert ("warning: Approach 2: budget C=1e+18 left out (4 runs, 4 sizes, degree 3): fewer than 5 distinct "
            "sizes for a degree-3 fit") in done.stderr
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert [pb["interior"] for pb in fit["isoflop"]["per_budget"]] == [False, True, True]


def test_asking_for_approach3_recommends_without_bracketed_budgets_but_cautions():
    df = synthetic_sweep(seed=2, budgets=(1e19, 1e20, 1e21))
    df = df[df["N"] < df["budget"].map(true_optimum) / 1.5]
    result = fit_json(df, target_budgets=[1e22], bootstrap=0, recommend_from="parametric")
    assert result["recommend"]["method"] == "parametric" and len(result["recommend"]["add_runs"]) == 3
    prediction = result["predictions"][0]
    assert prediction["recommended"]["N"] == prediction["N"]
    assert prediction["flags"][0].startswith("only 0 of 3 isoFLOP budgets have an interior minimum")


def test_the_summary_page_shows_the_backtest_and_why_nothing_is_recommended():
    from flops_fit.recommend import COLUMNS
    from flops_fit.report_page import summary_page

    df = synthetic_sweep(seed=2, budgets=(1e19, 1e20, 1e21))
    fit = ScalingFit.from_dict(fit_json(df, target_budgets=[1e22], bootstrap=0))
    runs = pd.DataFrame({"run_id": ["r1"], "status": ["ok"]})
    page = summary_page(fit, pd.DataFrame(columns=COLUMNS), runs)
    assert "backtest (largest budget C=1e21 predicted from the budgets below): N* predicted" in page
    edge = df[df["N"] < df["budget"].map(true_optimum) / 1.5]
    fit = ScalingFit.from_dict(fit_json(edge, target_budgets=[1e22], bootstrap=0))
    page = summary_page(fit, pd.DataFrame(columns=COLUMNS), runs)
    assert "no recommendation: 0 of 3 isoFLOP budgets" in page and "add sizes above N=" in page
    assert "backtest: not possible: the held-out budget C=1e+21 has no interior optimum" in page


def test_runs_to_add_name_the_side_and_aim_only_at_a_vertex_near_the_sizes():
    """A flat, noisy profile put its parabola's vertex at N = 9e-7: "add sizes around N=9.17e-07"."""
    from flops_fit.fitting.advice import runs_to_add
    from flops_fit.fitting.isoflop import OUTSIDE

    entry = {"C": 1.5e10, "reason": OUTSIDE, "N_range": (228.0, 1.8e4)}
    near = runs_to_add({**entry, "N_opt": 60.0})
    assert "add sizes below N=228, toward N=60 where the fitted minimum lies" in near
    far = runs_to_add({**entry, "N_opt": 9.17e-7})
    assert "add sizes below N=228" in far and "too far out to aim at" in far
    assert "add sizes above N=1.8e+04" in runs_to_add({**entry, "N_opt": 5e4})
