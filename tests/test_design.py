"""flops_fit.design (the expected interval of a design, the next wave's choice) and the placer's chosen
waves under ``sweep.precision``: simulated runs from a known law (no training), fitted for real."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from flops_fit import design
from flops_fit.fitting import fit_table
from flops_fit.planning import as_table
from test_placement import law, placer
from test_planning import config as planning_config

TARGET = 1e15
NOISE = 0.004
LADDER = (1e12, 2e12, 4e12, 8e12)


def config(budgets=(1e12, 4e12, 1.6e13), **sweep):
    return planning_config(None, budgets=budgets, **{"sizes_per_budget": 6, "steps": 100, "seed_replicates": 0, **sweep})


def noisy(run_id: str, N: float, D: float) -> float:
    """The law with a run's own log-normal noise, fixed by its run id (a rerun sees the same loss)."""
    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    return float(law(N, D) * math.exp(rng.normal(0.0, NOISE)))


def fit_of(table: pd.DataFrame, losses: dict[str, float], target: float = TARGET):
    rows = table[table["role"] == "sweep"]
    df = pd.DataFrame({"N": rows["params"].astype(float), "D": rows["tokens"].astype(float),
                       "C": rows["achieved_flops"].astype(float), "budget": rows["budget"].astype(float),
                       "loss": rows["run_id"].map(losses)})
    return fit_table(df, budgets=sorted(set(df["budget"])), target_budgets=[target], bootstrap=300, seed=0)


def precision_waves(cfg, loss=noisy):
    """The placer's waves with a chooser that fits the finished (simulated) runs, as the pipeline does;
    returns the table, the losses and every decision."""
    p = placer(cfg)
    prec = p.recipe.precision
    decisions: list[design.Decision] = []

    def choose(table, densifiable):
        sweep = table[table["role"] == "sweep"]
        d = design.decide(fit_of(table, losses, prec.budget), prec.budget, prec.n_star,
                          placed=sorted(set(sweep["budget"].astype(float))), ladder=list(cfg["budgets"]),
                          spent=float(table["achieved_flops"].sum()), cap=p.recipe.max_flops,
                          sizes_per_budget=p.recipe.sizes_per_budget, sizes_per_wave=prec.sizes_per_wave,
                          densifiable=densifiable, history=[x.width for x in decisions if x.status == "add"])
        decisions.append(d)
        return d

    p.chooser = choose
    table, losses = as_table([]), {}
    for wave in range(60):
        rows, _ = p.next_wave(table, losses, wave)
        if not rows:
            break
        new = as_table(rows)
        table = pd.concat([table, new], ignore_index=True) if len(table) else new
        losses.update({r.run_id: loss(r.run_id, r.params, r.tokens) for r in new.itertuples()})
    return table, losses, decisions


# ------------------------------------------------------------------------------------ the design math
def test_the_expected_interval_is_the_weighted_line_plus_the_law_error():
    points = (design.BudgetPoint(1e12, 0.1, 6), design.BudgetPoint(1e13, 0.1, 6))
    d = design.Design(points, scatter_sd=0.0, law_tau2=0.0)
    # two points of sd 0.1 at x = -/+ h (centred ln C): prediction at x has variance 0.01/2 (1 + x^2/h^2)
    h = math.log(10) / 2
    x = math.log(1e15) - math.log(1e12) - h
    assert d.sd(1e15) == pytest.approx(math.sqrt(0.01 / 2 * (1 + x * x / h / h)))
    with_law = design.Design(points, scatter_sd=0.0, law_tau2=0.01)
    assert with_law.sd(1e15) ** 2 == pytest.approx(d.sd(1e15) ** 2 + 0.01 * math.log(100) ** 2)


def test_candidates_narrow_the_interval_and_a_higher_rung_narrows_it_most():
    points = tuple(design.BudgetPoint(c, 0.15, 6) for c in (1e12, 2e12, 4e12))
    d = design.Design(points, scatter_sd=0.03, law_tau2=0.02 ** 2)
    now = d.width(1e15)
    options = design.candidates(d, 1e15, [1e12, 2e12, 4e12], [1e12, 2e12, 4e12], 6, 4)
    kinds = {(c.kind, c.C) for c in options}
    assert ("budget", 8e12) in kinds and ("budget", 1.6e13) in kinds and ("budget", 5e11) in kinds
    assert all(c.width < now for c in options)
    best = min(options, key=lambda c: c.width)
    assert best.kind == "budget" and best.C == pytest.approx(1.6e13)
    assert best.flops == pytest.approx(6 * 1.6e13)


def test_calibration_reproduces_the_reported_width():
    points = tuple(design.BudgetPoint(c, 0.15, 6) for c in (1e12, 2e12, 4e12))
    raw = design.Design(points, 0.02, 0.0)
    reported = raw.width(1e15) ** 1.3  # the fit's interval is 30 % wider on the log scale
    assert raw.calibrated(1e15, reported).width(1e15) == pytest.approx(reported)
    assert raw.calibrated(1e15, raw.width(1e15) ** 10).calibration == design.CALIBRATION_BOUNDS[1]


def test_the_ladder_rungs_come_from_the_ladder_then_its_ratio():
    assert design.rungs([1e12, 2e12], [1e12, 2e12, 4e12, 8e12]) == (4e12, 8e12, 5e11)
    above, after, below = design.rungs([1e12, 2e12, 4e12], [1e12, 2e12, 4e12])
    assert (above, after, below) == pytest.approx((8e12, 1.6e13, 5e11))
    assert design.rungs([5e11, 1e12, 2e12], [1e12, 2e12])[2] is None  # one rung under the ladder at most


# --------------------------------------------------------------------------------- the decision
@pytest.fixture(scope="module")
def three_budgets():
    table, losses, _ = precision_waves(config(precision={"budget": TARGET, "N_star": 1e9}))
    return table, losses


def test_a_goal_already_met_stops_the_sweep(three_budgets):
    table, losses = three_budgets
    fit = fit_of(table, losses)
    d = design.decide(fit, TARGET, 1e9, placed=[1e12, 4e12, 1.6e13], ladder=[1e12, 4e12, 1.6e13], spent=0.0,
                      cap=None, sizes_per_budget=6, sizes_per_wave=4)
    assert d.status == "reached" and d.width is not None and d.width <= 1e9


def test_no_wave_under_the_cap_stops_the_sweep_and_says_what_the_next_would_cost(three_budgets):
    table, losses = three_budgets
    fit = fit_of(table, losses)
    spent = float(table["achieved_flops"].sum())
    d = design.decide(fit, TARGET, 1.01, placed=[1e12, 4e12, 1.6e13], ladder=[1e12, 4e12, 1.6e13], spent=spent,
                      cap=spent * 1.01, sizes_per_budget=6, sizes_per_wave=4)
    assert d.status == "cap" and d.candidate is not None and spent + d.candidate.flops > spent * 1.01
    assert "sweep.max_flops" in d.message


def test_a_law_error_that_dominates_means_no_wave_helps(three_budgets):
    # just beyond the largest budget (no rung above fits below the target), with a large law error:
    # more sizes or a budget below narrow the parameter part only, which is a sliver of the interval
    table, losses = three_budgets
    target = 2e13
    fit = fit_of(table, losses, target)
    uncertainty = {**fit.uncertainty, "law_error": {**fit.uncertainty["law_error"],
                                                    "N": {"tau_per_lnC": 5.0, "dof": 1000.0}}}
    d = design.decide(replace(fit, uncertainty=uncertainty), target, 1.01, placed=[1e12, 4e12, 1.6e13],
                      ladder=[1e12, 4e12, 1.6e13], spent=0.0, cap=None, sizes_per_budget=6, sizes_per_wave=4)
    assert d.status == "no_gain"


def test_without_a_goal_the_decision_is_advice_with_a_candidate(three_budgets):
    table, losses = three_budgets
    d = design.decide(fit_of(table, losses), TARGET, None, placed=[1e12, 4e12, 1.6e13], ladder=[1e12, 4e12, 1.6e13],
                      spent=0.0, cap=None, sizes_per_budget=6, sizes_per_wave=4)
    assert d.status == "advice" and d.candidate is not None and d.candidate.width < d.width


# ------------------------------------------------------------------------- chosen waves in the placer
def test_a_precision_sweep_chooses_waves_until_the_goal_is_reached():
    cfg = config(LADDER, precision={"budget": TARGET, "N_star": 1.6, "start_budgets": 2})
    table, losses, decisions = precision_waves(cfg)
    assert decisions[-1].status == "reached", [d.message for d in decisions]
    assert decisions[-1].width <= 1.6
    assert [d.status for d in decisions[:-1]] == ["add"] * (len(decisions) - 1) and len(decisions) >= 2
    # each added wave's runs are the chosen candidate's
    fit = fit_of(table, losses)
    assert fit.prediction_at(TARGET).recommended.ci["N"][1] / fit.prediction_at(TARGET).recommended.ci["N"][0] <= 1.6


def test_a_precision_sweep_stops_at_the_cap():
    cfg = config(LADDER, precision={"budget": TARGET, "N_star": 1.05, "start_budgets": 2},
                 max_flops=6e13)
    table, _, decisions = precision_waves(cfg)
    assert decisions[-1].status == "cap"
    assert float(table["achieved_flops"].sum()) <= 6e13


def test_a_tighter_precision_only_adds_runs():
    loose = config(LADDER, precision={"budget": TARGET, "N_star": 2.5, "start_budgets": 2})
    tight = config(LADDER, precision={"budget": TARGET, "N_star": 1.5, "start_budgets": 2})
    first, _, d1 = precision_waves(loose)
    second, _, d2 = precision_waves(tight)
    assert d1[-1].status == "reached"
    assert len(second) > len(first)
    kept = second.set_index("run_id").loc[first["run_id"]]
    cols = ["budget", "size", "params", "tokens", "lr", "batch_size", "steps"]
    pd.testing.assert_frame_equal(kept[cols].reset_index(drop=True), first[cols].reset_index(drop=True))


# ------------------------------------------------------------------------------------------ outlook
def outlook(three_budgets, goal, target=TARGET, **kw):
    table, losses = three_budgets
    return design.outlook(fit_of(table, losses, target), target, goal, placed=[1e12, 4e12, 1.6e13],
                          ladder=[1e12, 4e12, 1.6e13], spent=float(table["achieved_flops"].sum()),
                          sizes_per_budget=6, sizes_per_wave=4, **{"cap": None, **kw})


def test_an_unreached_goal_gets_the_waves_and_flops_expected_to_reach_it(three_budgets):
    now = outlook(three_budgets, None)["width"]
    goal = 1 + (now - 1) / 2  # half the log-ish width: several waves away, within reach of the rungs
    out = outlook(three_budgets, goal, cap=0.0)
    assert out["status"] == "cap" and out["reachable"] is True and out["steps"]
    # the path's last wave is expected to meet the goal, each wave narrowing the interval further
    widths = [s["expected_width"] for s in out["steps"]]
    assert widths[-1] <= goal < now and widths == sorted(widths, reverse=True)
    assert out["flops_more"] == pytest.approx(sum(s["flops"] for s in out["steps"]))
    assert f"to reach x{goal:g}" in out["message"] and f"{out['flops_more']:.2g} FLOPs more" in out["message"]


def test_a_goal_beyond_the_law_error_is_said_out_of_reach(three_budgets):
    out = outlook(three_budgets, 1.0001, target=2e13)
    assert out["reachable"] is False and "no sequence of candidate waves" in out["message"]


def test_without_a_goal_the_outlook_says_what_one_more_wave_would_buy(three_budgets):
    out = outlook(three_budgets, None)
    assert out["status"] == "advice" and len(out["steps"]) == 1
    assert out["steps"][0]["expected_width"] < out["width"]
    assert out["message"].startswith("one more wave would buy: add")


def test_a_reached_goal_says_what_the_sweep_spent(three_budgets):
    out = outlook(three_budgets, 1e9)
    assert out["status"] == "reached" and out["steps"] == [] and "precision reached" in out["message"]


def test_a_precision_with_fixed_placement_is_refused_with_the_fix():
    from flops_fit.errors import ConfigError
    from flops_fit.recipe import Recipe

    with pytest.raises(ConfigError, match="placement: adaptive"):
        Recipe.from_config(config(precision={"budget": TARGET, "N_star": 2.0}, placement="fixed"))


def test_chosen_waves_that_stopped_narrowing_leave_only_a_budget_above_then_end_the_sweep(three_budgets):
    table, losses = three_budgets
    kw = dict(placed=[1e12, 4e12, 1.6e13], ladder=[1e12, 4e12, 1.6e13], spent=0.0, cap=None, sizes_per_budget=6,
              sizes_per_wave=4)
    fit = fit_of(table, losses)
    width = design.decide(fit, TARGET, 1.01, **kw).width
    narrowing = design.decide(fit, TARGET, 1.01, history=[width * 1.5, width * 1.2], **kw)
    stalled = design.decide(fit, TARGET, 1.01, history=[width * 0.9, width * 1.1], **kw)
    assert narrowing.status == "add"
    assert stalled.status == "add" and "did not narrow it" in stalled.message
    assert stalled.candidate.kind == "budget" and stalled.candidate.C > 1.6e13
    # just beyond the largest budget no rung above fits below the target: the stalled sweep ends
    near = fit_of(table, losses, 2e13)
    width = design.decide(near, 2e13, 1.01, **kw).width
    ended = design.decide(near, 2e13, 1.01, history=[width * 0.9, width * 1.1], **kw)
    assert ended.status == "no_gain" and "no budget above narrows it" in ended.message


def test_a_decision_without_an_interval_is_strict_json():
    import json

    from flops_fit.fitting import fit_table

    N = np.array([1e4, 2e4, 4e4, 8e4, 1.6e5, 3.2e5])
    one = pd.DataFrame({"N": N, "D": 1e11 / (6 * N), "C": 1e11, "budget": 1e11, "loss": law(N, 1e11 / (6 * N))})
    fit = fit_table(one, budgets=[1e11], target_budgets=[TARGET], bootstrap=20, seed=0)
    d = design.decide(fit, TARGET, 2.0, placed=[1e11], ladder=[1e11], spent=0.0, cap=None, sizes_per_budget=6,
                      sizes_per_wave=4)
    assert d.status == "add" and d.candidate.kind == "budget"
    json.dumps(d.to_dict(), allow_nan=False)  # a candidate of unknown width is null, not NaN


def test_an_outlook_without_an_interval_says_so(three_budgets):
    table, losses = three_budgets
    rows = table[table["role"] == "sweep"]
    df = pd.DataFrame({"N": rows["params"].astype(float), "D": rows["tokens"].astype(float),
                       "C": rows["achieved_flops"].astype(float), "budget": rows["budget"].astype(float),
                       "loss": rows["run_id"].map(losses)})
    fit = fit_table(df, budgets=sorted(set(df["budget"])), target_budgets=[TARGET], bootstrap=0, seed=0)
    for goal in (None, 2.0):
        out = design.outlook(fit, TARGET, goal, placed=[1e12, 4e12, 1.6e13], ladder=[1e12, 4e12, 1.6e13], spent=0.0,
                             cap=None, sizes_per_budget=6, sizes_per_wave=4)
        assert out["width"] is None and out["message"]
