"""Verification: the recommended size and its neighbours, their observed losses against the law's
predictions and whether the recommended size is the observed optimum (pure functions, then the
`verify` target on the `.test` sweep)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_sweep
from flops_fit.config import load_config, prepare_config
from flops_fit.errors import ConfigError
from flops_fit.examples.gpt import GPT
from flops_fit.planning import SizeCatalog, read_runs_table
from fitting_support import fit_record
from flops_fit.fitting import ScalingFit
from flops_fit.fitting.records import read_fit
from flops_fit.pipeline import verify_plan_step, verify_step
from flops_fit.verify import (
    COLUMNS, carried_interval, check_budgets, law_loss, lines, mark_best, nothing_to_verify, size_factors, sizes_at,
    verification_row, verify_budgets,
)
from workflow_support import ROOT, snakemake

LAW = {"E": 1.5, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def fit_dict(recommend_method: str | None = "parametric", noise_sd: float | None = None) -> ScalingFit:
    """A fit with one target budget: Approach 3's law, frontier point and interval, Approach 2's N*, D*
    (and one run's seed noise ``noise_sd``, None: not measured)."""
    return fit_record(
        noise={"sd": noise_sd, "source": None if noise_sd is None else "seed replicates"},
        parametric=LAW,
        predictions=[{"C": 1e13, "approach": "parametric (Approach 3)", "N": 2e6, "D": 8e7, "loss": 2.40,
                      "tokens_per_param": 40.0, "ci": {"loss": [2.30, 2.55]}, "isoflop_N": 3e6, "isoflop_D": 5.5e7}],
        recommend={"from": "parametric", "method": recommend_method, "reason": "only 1 budget has an interior minimum",
                   "add_runs": ["add sizes above d_model=48 at C=1e10"]},
        bootstrap={"ci_level": 0.95},
    )


RECOMMENDATION = {"C": 1e13, "size": 96, "method": "parametric", "N_star": 2e6, "N_star_isoflop": 3e6,
                  "N_star_parametric": 2e6}
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


def test_size_factors_are_powers_of_two_centred_on_n_star():
    assert size_factors(1) == [1.0]  # the recommended size alone (the behaviour before verify.sizes)
    assert size_factors(3) == [0.5, 1.0, 2.0]
    assert size_factors(5) == [0.25, 0.5, 1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="odd"):
        size_factors(4)
    raw = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    assert prepare_config(raw)["verify"]["sizes"] == 3
    with pytest.raises(ConfigError, match="verify.sizes.*4 is not accepted.*odd count"):  # the rule, not "multipleOf"
        prepare_config({**raw, "verify": {"sizes": 4}})


@pytest.fixture(scope="module")
def catalog() -> SizeCatalog:
    """The `.test` model's knob (d_model of a 1-layer GPT), searched on the meta device."""
    config = load_config(ROOT / ".test/config/config.yaml")
    return SizeCatalog(GPT, config["model"], "6N", None, 32)


@pytest.mark.parametrize("count, expected", [(1, [24]), (3, [16, 24, 36]), (5, [11, 16, 24, 36, 54])])
def test_each_factor_of_n_star_becomes_the_closest_legal_knob_value(catalog, count, expected):
    N_star = catalog.info(24).params
    sizes, notes = sizes_at(catalog, {"C": 1e11, "size": 24.0, "N_star": N_star}, count)  # 24.0: as read from TSV
    assert sizes == expected and notes == []
    for size, factor in zip(sizes, size_factors(count)):  # each within the knob's rounding of factor · N*
        assert abs(math.log2(catalog.info(size).params / (factor * N_star))) < 0.5


def test_factors_that_share_a_knob_value_train_it_once_and_say_so(catalog):
    """At the knob's smallest legal value (d_model = 1) N*/4 and N*/2 both resolve to it."""
    sizes, notes = sizes_at(catalog, {"C": 1e11, "size": 2, "N_star": catalog.info(2).params}, 5)
    assert sizes == [1, 2, 3, 6]
    assert notes == ["verify C = 1e+11: 1/4 and 1/2 × N* give the same d_model = 1; it is trained once "
                     "(4 distinct sizes of the 5 asked for)"]


def budget_rows(losses: dict[int, float | None], noise_sd: float | None = None) -> list[dict]:
    """The verification rows of one budget whose recommended size is d_model = 96: {size: observed loss}
    (None: the run diverged), marked as the verification table marks them."""
    fit = fit_dict(noise_sd=noise_sd)
    rows = []
    for size, loss in losses.items():
        run = {**RUN, "run_id": f"C1e13_d_model{size}_verify", "size": size, "params": RUN["params"] * (size / 96) ** 2}
        metrics = {"status": "ok", "eval_loss": loss} if loss is not None else {"status": "diverged", "eval_loss": None}
        rows.append(verification_row(fit, RECOMMENDATION, run, metrics))
    mark_best(rows)
    return rows


def test_the_recommended_size_as_the_observed_optimum_is_judged_against_run_noise():
    rows = budget_rows({64: 2.65, 96: 2.60, 128: 2.62}, noise_sd=0.005)
    assert [r["recommended"] for r in rows] == [False, True, False]
    assert [r["observed_best"] for r in rows] == [False, True, False]
    said = lines(pd.DataFrame(rows, columns=COLUMNS))
    assert len(said) == 4  # a line per run, then the budget's verdict
    assert "(recommended)" in said[1] and "would have chosen N*" in said[1]
    assert "(recommended)" not in said[0] and "would have chosen" not in said[0]
    inside = sum(r["predicted_loss_lo"] <= r["observed_loss"] <= r["predicted_loss_hi"] for r in rows)
    assert said[3] == (
        "verify C = 1e+13: the recommended d_model = 96 is the observed optimum of the 3 sizes trained "
        "(d_model = 64, 96, 128); the next best, d_model = 128, lost 0.02 more, 2.8× the seed-noise sd of a "
        f"two-run difference (σ√2, σ = 0.005): beyond run noise; {inside} of 3 losses inside their prediction "
        "intervals"
    )


def test_a_neighbour_that_beat_the_recommended_size_is_named_with_its_margin():
    rows = budget_rows({64: 2.65, 96: 2.60, 128: 2.59}, noise_sd=0.01)
    assert [r["observed_best"] for r in rows] == [False, False, True]
    verdict = lines(pd.DataFrame(rows, columns=COLUMNS))[-1]
    assert "the recommended d_model = 96 is NOT the observed optimum of the 3 sizes trained" in verdict
    assert "d_model = 128 (N = " in verdict and "reached a loss 0.01 lower (0.38%)" in verdict
    assert "0.7× the seed-noise sd" in verdict and "within run noise" in verdict
    assert "it is the largest size trained, so the optimum may lie beyond it" in verdict
    unknown = lines(pd.DataFrame(budget_rows({64: 2.65, 96: 2.60, 128: 2.59}), columns=COLUMNS))[-1]
    assert "(run noise unknown: sweep.seed_replicates measures it)" in unknown


def test_without_two_losses_the_optimum_is_untested():
    rows = budget_rows({64: None, 96: 2.60, 128: None})
    assert [r["observed_best"] for r in rows] == [None, True, None]  # a diverged run neither wins nor loses
    assert "1 of 3 sizes have a loss, the recommended d_model = 96 among them: whether it is the optimum is untested" \
        in lines(pd.DataFrame(rows, columns=COLUMNS))[-1]
    alone = lines(pd.DataFrame(budget_rows({96: 2.60}), columns=COLUMNS))[-1]
    assert "only the recommended size trained (verify.sizes = 1): whether it is the optimum is untested" in alone


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
    plan, notes = verify_plan_step({}, [1e13], 3, tmp_path / "fit.json", tmp_path / "recommendations.tsv",
                                   tmp_path / "lr.json", tmp_path / "plan.tsv")
    assert len(plan) == 0 and notes == nothing_to_verify(fit, [1e13])
    out = verify_step(tmp_path / "fit.json", tmp_path / "recommendations.tsv", tmp_path / "plan.tsv",
                      tmp_path / "runs", [1e13], tmp_path / "verify.tsv", tmp_path / "verify.html")
    assert out == notes
    assert list(pd.read_csv(tmp_path / "verify.tsv", sep="\t").columns) == COLUMNS
    assert "only 1 budget has an interior minimum" in (tmp_path / "verify.html").read_text()


# ------------------------------------------------------------------------------- the verify target
@dataclasses.dataclass(frozen=True)
class Verified:
    """A copy of the `.test` sweep verified twice: first with ``verify.sizes: 1`` (the recommended run
    alone), then with the default 3, so the second verify grows the sizes around a finished run."""

    workdir: Path
    fit_mtime: float  # fit.json's, before any verify
    alone: pd.DataFrame  # verify.tsv after the first verify
    alone_stamp: int  # the recommended run's metrics.json mtime (ns) after the first verify
    alone_said: str  # the first verify's console
    result: subprocess.CompletedProcess  # the second verify


@pytest.fixture(scope="module")
def verified(test_sweep, tmp_path_factory) -> Verified:
    copy = copy_sweep(test_sweep, tmp_path_factory.mktemp("verify") / "v")
    fit_mtime = (copy / "results/fit/fit.json").stat().st_mtime
    first = snakemake(copy, "verify", "--config", "verify={'sizes': 1}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    alone = pd.read_csv(copy / "results/verify/verify.tsv", sep="\t")
    stamp = (copy / "results/runs" / alone["run_id"].iloc[0] / "metrics.json").stat().st_mtime_ns
    result = snakemake(copy, "verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return Verified(copy, fit_mtime, alone, stamp, first.stderr, result)


def test_verify_trains_three_sizes_around_the_recommendation_and_compares_each(verified):
    copy = verified.workdir
    table = pd.read_csv(copy / "results/verify/verify.tsv", sep="\t")
    recommendation = pd.read_csv(copy / "results/fit/recommendations.tsv", sep="\t").iloc[0]
    fit = read_fit(copy / "results/fit/fit.json")
    assert list(table.columns) == COLUMNS and len(table) == 3
    assert (table["C"] == recommendation["C"]).all() and table["size"].is_monotonic_increasing
    assert table["recommended"].tolist() == [False, True, False]  # N*/2, N*, 2N*
    assert table["size"].iloc[1] == recommendation["size"]
    for factor, N in zip((0.5, 1, 2), table["N"]):  # each within the knob's rounding of its multiple of N*
        assert abs(math.log2(N / (factor * recommendation["N_star"]))) < 0.5
    width = np.diff(fit.predictions[0].ci["loss"])[0]
    for _, row in table.iterrows():
        assert row["status"] == "ok" and math.isfinite(row["observed_loss"])
        assert row["predicted_loss"] == pytest.approx(fit.parametric.loss(row["N"], row["D"]))  # the law at (N, D)
        assert row["predicted_loss_hi"] - row["predicted_loss_lo"] == pytest.approx(width)
        lo, hi = row["predicted_loss_lo"], row["predicted_loss_hi"]
        assert bool(row["inside_interval"]) == (lo <= row["observed_loss"] <= hi)
        metrics = json.loads((copy / "results/runs" / row["run_id"] / "metrics.json").read_text())
        assert metrics["eval_loss"] == pytest.approx(row["observed_loss"])
    assert table["observed_best"].tolist() == (table["observed_loss"] == table["observed_loss"].min()).tolist()


def test_the_page_and_console_say_whether_the_recommendation_is_the_observed_optimum(verified):
    table = pd.read_csv(verified.workdir / "results/verify/verify.tsv", sep="\t")
    recommended = table[table["recommended"]].iloc[0]
    verdict = (f"the recommended d_model = {recommended['size']} is "
               f"{'' if recommended['observed_best'] else 'NOT '}the observed optimum of the 3 sizes trained")
    page = (verified.workdir / "results/verify/verify.html").read_text()
    assert verdict in page and "observed loss" in page
    assert f"flops-fit: verify C = 1e+11: {verdict}" in verified.result.stderr  # the console, at the end


def test_growing_verify_sizes_keeps_the_trained_run(verified):
    """sizes 1 → 3: the recommended run keeps its id and identity, so it is kept, not retrained."""
    assert len(verified.alone) == 1 and bool(verified.alone["recommended"].iloc[0])
    assert "verify C = 1e+11: only the recommended size trained (verify.sizes = 1)" in verified.alone_said
    run_id = verified.alone["run_id"].iloc[0]
    table = pd.read_csv(verified.workdir / "results/verify/verify.tsv", sep="\t")
    assert run_id == table[table["recommended"]]["run_id"].iloc[0]
    assert (verified.workdir / "results/runs" / run_id / "metrics.json").stat().st_mtime_ns == verified.alone_stamp


def test_the_verify_runs_are_planned_with_the_sweep_recipe_but_never_fitted(verified):
    copy = verified.workdir
    plan = read_runs_table(copy / "results/verify/plan.tsv")
    sweep = read_runs_table(copy / "results/plan/runs.tsv")
    law = json.loads((copy / "results/plan/lr_calibration.json").read_text())
    assert len(plan) == 3 and plan["run_id"].is_unique and plan["run_id"].str.endswith("_verify").all()
    for _, run in plan.iterrows():
        assert run["role"] == "verify" and run["run_id"] not in set(sweep["run_id"])
        assert run["steps"] == 60 and abs(run["achieved_flops"] / run["budget"] - 1) < 0.01  # the .test recipe
        assert run["lr"] == pytest.approx(law["coefficient"] * run["params"] ** law["exponent"])
    assert (copy / "results/fit/fit.json").stat().st_mtime == verified.fit_mtime  # the fit was not rerun


def test_a_second_verify_trains_nothing(verified):
    result = snakemake(verified.workdir, "verify")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_the_default_target_does_not_verify(test_sweep):
    assert not (test_sweep / "results/verify").exists()
