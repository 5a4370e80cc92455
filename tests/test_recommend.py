"""The size-knob search and the recommendations, on small models whose constructors enforce rules."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn as nn

from flops_fit import find_optimal
from flops_fit.config import prepare_config
from flops_fit.fitting import ScalingFit
from flops_fit.io import write_tsv
from flops_fit.knob import ParamCounter, closest_size
from fitting_support import fit_record
from flops_fit.recommend import (
    lines, print_recommendations, read_recommendations, recommend, recommendation_line,
)


class DivisibleMLP(nn.Module):
    """A regression MLP whose width must be a multiple of 8 (like d_model and attention heads)."""

    def __init__(self, width: int, d_in: int = 6) -> None:
        super().__init__()
        if width % 8:
            raise ValueError(f"width={width} must be divisible by 8")
        self.net = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def mlp_params(width: int, d_in: int = 6) -> int:
    return width * (d_in + 2) + 1


class ScaledMLP(nn.Module):
    """A float knob: width = round(64 * scale)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.fc = nn.Linear(4, max(1, round(64 * scale)))


class CappedMLP(DivisibleMLP):
    """Refuses widths above 64: the largest legal value is the best the model allows."""

    def __init__(self, width: int) -> None:
        if width > 64:
            raise ValueError("at most 64")
        super().__init__(width)


class Shrinking(nn.Module):
    """N falls as the knob grows: no value can be trusted to reach N*."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(4, max(1, 1000 - width))


def brute_force(target: float, widths: range) -> int:
    legal = [w for w in widths if w % 8 == 0]
    return min(legal, key=lambda w: abs(math.log(mlp_params(w) / target)))


@pytest.mark.parametrize("target", [50.0, 300.0, 2_000.0, 123_457.0, 5e6])
def test_closest_legal_width_matches_a_brute_force_scan(target):
    counter = ParamCounter(DivisibleMLP, "width", {})
    size, n = closest_size(DivisibleMLP, "width", {}, target, [16, 32, 64], counter)
    assert size % 8 == 0 and n == mlp_params(size)
    assert size == brute_force(target, range(8, 2 * int(target)))
    # bracketing + bisection: a few dozen constructions, not a scan of ~target/8 widths
    assert len(counter.cache) < 60


def test_a_target_beyond_what_the_model_allows_gives_its_largest_legal_size():
    assert closest_size(CappedMLP, "width", {}, 1e6, [16, 32], None) == (64, mlp_params(64))


def test_float_knob_is_searched_to_its_resolution():
    size, n = closest_size(ScaledMLP, "scale", {}, 4 * 640 + 640, [0.5, 1.0], None)  # width 640
    assert isinstance(size, float) and abs(size - 10.0) < 0.02 and n == 5 * 640


def test_a_knob_that_does_not_grow_n_is_reported():
    with pytest.raises(ValueError, match="does not grow"):
        closest_size(Shrinking, "width", {}, 1e6, [10, 20], None)


def config_for(**sweep) -> dict:
    return prepare_config({
        "model": {"class": "x:DivisibleMLP", "size_param": "width", "sizes": [16, 24, 32, 48], "kwargs": {}},
        "dataset": {"target": "x:data"}, "loss": {"target": "x:loss"},
        "budgets": [1e6, 3e6], "target_budgets": [1e9], "sweep": {"flops_per_token": "6N", **sweep},
    })  # 6N: these recommendations are counted without example inputs


FIT = {
    "predictions": [{"C": 1e9, "approach": "parametric (Approach 3)", "N": 3000.0, "D": 5.5e4, "loss": 0.31,
                     "tokens_per_param": 5.5e4 / 3000.0, "extrapolation_factor": 300.0,
                     "ci": {"N": [2000.0, 4500.0], "D": [4e4, 8e4], "loss": [0.29, 0.33]}}],
}


def as_fit(parts: dict) -> ScalingFit:
    """A real fit's record with the parts the recommender reads (predictions, the approach choice) replaced."""
    return fit_record(**{"recommend": {"from": None, "method": None}, **parts})


def test_recommendation_trains_the_chosen_size_on_its_budget_with_the_plans_step_rule():
    table, warnings = recommend(as_fit(FIT), config_for(steps=100), DivisibleMLP, None, tokens_per_sample=1)
    row = table.iloc[0]
    assert warnings == [] and row["size"] == brute_force(3000.0, range(8, 4000))
    assert row["N"] == mlp_params(row["size"]) and row["flops_per_token"] == 6 * row["N"]
    assert row["D"] == pytest.approx(1e9 / row["flops_per_token"])
    assert row["steps"] == 100 and abs(row["tokens"] / row["D"] - 1) < 0.01  # the batch grew with D
    assert (row["N_star_lo"], row["N_star_hi"], row["loss_hi"]) == (2000.0, 4500.0, 0.33)


def test_a_fixed_batch_size_sets_the_steps():
    table, _ = recommend(as_fit(FIT), config_for(batch_size=64), DivisibleMLP, None, tokens_per_sample=1)
    assert table.iloc[0]["batch_size"] == 64
    assert table.iloc[0]["steps"] == round(table.iloc[0]["D"] / 64)


def test_the_line_reads_back_from_the_tsv(tmp_path):
    table, _ = recommend(as_fit(FIT), config_for(steps=100), DivisibleMLP, None, tokens_per_sample=1)
    write_tsv(table, tmp_path / "r.tsv")
    line = lines(read_recommendations(tmp_path / "r.tsv"))[0]
    assert line == recommendation_line(table.iloc[0].to_dict())
    assert line.startswith(f"for C = 1e+09, use width = {table.iloc[0]['size']} (N = ")
    assert "95% CI 2e3–4.5e3" in line and "≈ 100 steps of batch" in line
    no_ci = table.assign(N_star_lo=None, N_star_hi=None).iloc[0].to_dict()
    assert "no interval" in recommendation_line(no_ci)


def test_no_target_budgets_gives_an_empty_table():
    table, _ = recommend(as_fit({"predictions": []}), config_for(steps=100), DivisibleMLP, None, tokens_per_sample=1)
    assert table.empty and lines(table) == []


def test_find_optimal_returns_the_same_recommendations(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(6000, 6)
    y = torch.sin(x @ torch.randn(6)) + 0.1 * torch.randn(6000)
    result = find_optimal(
        DivisibleMLP, "width", {}, torch.utils.data.TensorDataset(x, y), nn.MSELoss(), [2e5, 6e5],
        sizes=[8, 16, 24, 32, 48], target_budgets=[1e8], eval_samples=500, output_dir=tmp_path,
        sweep={"steps": 20, "sizes_per_budget": 5, "lr": 0.01, "lr_reference_size": 8, "placement": "fixed",
               "lr_calibration": {"enabled": False}},
        fit={"bootstrap": 20, "recommend_from": "parametric"},
    )
    rec = result.recommendations
    assert len(rec) == 1 and rec.iloc[0]["size"] % 8 == 0
    assert rec.iloc[0]["N_star"] == pytest.approx(result.fit.predictions[0].recommended.N)
    on_disk = read_recommendations(tmp_path / "fit" / "recommendations.tsv")
    pd.testing.assert_frame_equal(on_disk[["size", "N", "steps"]], rec[["size", "N", "steps"]], check_dtype=False)
    assert f"use width = {rec.iloc[0]['size']}" in repr(result)
    assert (tmp_path / "plots" / "frontier.png").exists()


def isoflop_fit(**recommended) -> dict:
    """FIT with both approaches' N*: Approach 2 recommends 2.5x Approach 3, at a long extrapolation."""
    prediction = {**FIT["predictions"][0], "isoflop_N": 7500.0, "isoflop_D": 2.2e4,
                  "recommended": {"method": "isoflop", "N": 7500.0, "D": 2.2e4, "tokens_per_param": 2.9,
                                  "ci": {"N": [6000.0, 9000.0], "D": [1.8e4, 2.8e4]}},
                  "flags": ["Approach 2 and 3 differ by 2.5x on N* (7.5e+03 against 3e+03): the recommendation "
                            "depends on the method", "extrapolated 300x beyond the largest fitted budget"]}
    return {**FIT, "predictions": [prediction], "recommend": {"from": "isoflop", "method": "isoflop",
                                                               "reason": None, "add_runs": []}}


def test_the_isoflop_frontier_recommends_and_the_line_says_so_with_its_cautions(tmp_path):
    table, _ = recommend(as_fit(isoflop_fit()), config_for(steps=100), DivisibleMLP, None, tokens_per_sample=1)
    row = table.iloc[0]
    assert row["method"] == "isoflop" and row["N_star"] == 7500.0 and row["N_star_lo"] == 6000.0
    assert (row["N_star_isoflop"], row["N_star_parametric"]) == (7500.0, 3000.0)
    assert row["size"] == brute_force(7500.0, range(8, 4000))
    write_tsv(table, tmp_path / "r.tsv")
    line = lines(read_recommendations(tmp_path / "r.tsv"))[0]
    assert "from the isoFLOP frontier, Approach 2" in line and "Approach 3: 3e3" in line
    assert "CAUTION: Approach 2 and 3 differ by 2.5x" in line and "extrapolated 300x" in line


def test_without_two_interior_budgets_nothing_is_recommended_and_the_runs_to_add_are_named(tmp_path, capsys):
    fit = {**FIT, "recommend": {"from": "isoflop", "method": None, "reason": "no recommendation: 1 of 2 isoFLOP "
                                "budgets have an interior minimum", "add_runs": [
                                    "budget C=3e+06 (lowest loss at the largest size: ...): add sizes above N=400"]}}
    table, warnings = recommend(as_fit(fit), config_for(steps=100), DivisibleMLP, None, tokens_per_sample=1)
    assert table.empty and list(table.columns)[-4:] == ["method", "N_star_isoflop", "N_star_parametric", "notes"]
    assert warnings[0].startswith("no recommendation") and "add sizes above N=400" in warnings[1]
    write_tsv(table, tmp_path / "recommendations.tsv")
    (tmp_path / "fit.json").write_text(json.dumps(as_fit(fit).to_dict()))
    print_recommendations(tmp_path / "recommendations.tsv", tmp_path / "fit.json")
    err = capsys.readouterr().err
    assert "flops-fit: no recommendation" in err and "add sizes above N=400" in err
