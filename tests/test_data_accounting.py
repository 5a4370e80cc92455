"""Data accounting (issue 25): datasets counted in samples, epochs per run and per recommendation, and
one summarised line for the runs that repeat data."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from flops_fit import find_optimal, pipeline, planning, report_page
from flops_fit.config import prepare_config
from flops_fit.data import dataset_samples, describe_dataset
from flops_fit.io import write_tsv
from flops_fit.recommend import lines, read_recommendations, recommend
from fitting_support import fit_record


class MLP(nn.Module):
    def __init__(self, width: int, d_in: int = 6) -> None:
        super().__init__()
        if width % 8:
            raise ValueError(f"width={width} must be divisible by 8")
        self.net = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class Stream(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.randn(6), torch.randn(())


def pairs(n: int) -> TensorDataset:
    """A learnable regression (targets a function of the inputs: runs that learn nothing are left out)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=generator)
    return TensorDataset(x, x @ torch.randn(6, generator=generator) + 0.1 * torch.randn(n, generator=generator))


def config(budgets=(2e5, 6e5), **sweep) -> dict:
    return prepare_config({
        "model": {"class": "m:MLP", "size_param": "width", "sizes": [8, 16, 24, 32, 48]},
        "dataset": {"target": "d:D"}, "loss": {"target": "l:L"}, "eval_dataset": {"samples": 50},
        "budgets": list(budgets), "target_budgets": [1e8],
        "sweep": {"sizes_per_budget": 5, "placement": "fixed", "lr_calibration": {"enabled": False},
                  "seed_replicates": 0, "flops_per_token": "6N", **sweep},  # 6N: counted without example inputs
    })


def test_a_dataloader_is_counted_in_samples_not_batches():
    loader = DataLoader(pairs(1285), batch_size=7)
    assert len(loader) == 184  # batches: what len() of a loader counts
    assert dataset_samples(loader) == 1285 and describe_dataset(loader)["length"] == 1285
    assert dataset_samples(pairs(1285)) == 1285
    assert dataset_samples(Stream()) is None and dataset_samples(DataLoader(Stream(), batch_size=7)) is None


def test_the_runs_table_counts_epochs_of_a_dataloaders_samples(tmp_path):
    loader = DataLoader(pairs(1285), batch_size=7)
    table, _ = pipeline.plan(config(), MLP, loader, pairs(100), nn.MSELoss())
    assert (table["batch_size"] == 7).all()
    expected = table["steps"] * 7 / 1285  # samples trained on / samples in the data, not / 184 batches
    assert table["epochs"].tolist() == pytest.approx(expected.tolist())
    write_tsv(table, tmp_path / "runs.tsv")
    back = planning.read_runs_table(tmp_path / "runs.tsv")
    assert back["epochs"].tolist() == pytest.approx(expected.tolist())
    # bookkeeping: the column never changes a run's identity, so finished runs are kept
    row = planning.run_row(back, back["run_id"].iloc[0])
    assert "epochs" not in planning.run_identity(row)


def test_epochs_are_empty_when_the_datas_size_is_unknown(tmp_path):
    table, notes = pipeline.plan(config(), MLP, Stream(), pairs(100), nn.MSELoss())
    assert table["epochs"].isna().all() and not [n for n in notes if "repeat" in n]
    write_tsv(table, tmp_path / "wave.tsv")
    _, notes = pipeline.plan_step(config(), tmp_path / "wave.tsv", tmp_path / "runs", tmp_path / "runs.tsv")
    assert not [n for n in notes if "repeat" in n]
    assert (tmp_path / "runs.tsv").read_text().splitlines()[1].count("\t\t") >= 1  # an empty cell


def test_many_repeating_runs_give_one_summarised_warning(tmp_path):
    # 250 samples, 50 held out: 200 to train on, which every run at the larger budget exceeds
    table, notes = pipeline.plan(config(), MLP, pairs(250), None, nn.MSELoss())
    write_tsv(table, tmp_path / "wave.tsv")
    table, more = pipeline.plan_step(config(), tmp_path / "wave.tsv", tmp_path / "runs", tmp_path / "runs.tsv")
    repeating = table[table["epochs"] > 1]
    assert len(repeating) >= 3 and table["epochs"].tolist() == pytest.approx((table["steps"] * table["batch_size"]
                                                                              / 200).tolist())
    said = [n for n in notes + more if "repeat" in n]
    assert len(said) == 1, said
    line = said[0]
    worst = repeating.loc[repeating["epochs"].idxmax()]
    assert line.startswith(f"{len(repeating)} of {len(table)} runs repeat data: up to {worst['epochs']:.3g} epochs")
    assert "200 training samples" in line and worst["run_id"] in line and "more data" in line


def test_a_recommendation_says_how_many_epochs_it_would_train():
    fit = fit_record(recommend={"from": None, "method": None}, predictions=[
        {"C": 1e10, "approach": "parametric (Approach 3)", "N": 3000.0, "D": 5.5e5, "loss": 0.31,
         "tokens_per_param": 5.5e5 / 3000.0, "extrapolation_factor": 300.0,
         "ci": {"N": [2000.0, 4500.0], "D": [4e5, 8e5], "loss": [0.29, 0.33]}}])
    cfg = config(steps=100)
    table, warnings = recommend(fit, cfg, MLP, None, tokens_per_sample=1, train_samples=1285)
    row = table.iloc[0]
    assert row["epochs"] == pytest.approx(row["batch_size"] * row["steps"] / 1285) and row["epochs"] > 100
    assert f"{row['epochs']:.3g} epochs" in lines(table)[0] and "CAUTION: repeats the data" in lines(table)[0]
    assert len([w for w in warnings if "repeat" in w]) == 1
    unknown, warnings = recommend(fit, cfg, MLP, None, tokens_per_sample=1)
    assert math.isnan(unknown.iloc[0]["epochs"]) and not [w for w in warnings if "repeat" in w]
    assert "epochs" not in lines(unknown)[0]


def test_find_optimal_records_epochs_and_says_once_that_runs_repeat_data(tmp_path):
    result = find_optimal(
        MLP, "width", {}, pairs(250), nn.MSELoss(), [2e5, 6e5], sizes=[8, 16, 24, 32, 48], target_budgets=[1e8],
        eval_samples=50, output_dir=tmp_path, progress=False,
        sweep={"steps": 20, "sizes_per_budget": 5, "lr": 0.01, "lr_reference_size": 8, "placement": "fixed",
               "lr_calibration": {"enabled": False}, "seed_replicates": 0, "flops_per_token": "6N"},
        fit={"bootstrap": 10, "recommend_from": "parametric"},
    )
    assert result.runs["epochs"].tolist() == pytest.approx(
        (result.runs["steps"] * result.runs["batch_size"] / 200).tolist())
    assert len([w for w in result.warnings if "repeat data" in w]) == 1
    on_disk = read_recommendations(tmp_path / "fit" / "recommendations.tsv")
    rec = on_disk.iloc[0]
    assert rec["epochs"] == pytest.approx(rec["batch_size"] * rec["steps"] / 200)
    assert "epochs" in pd.read_csv(tmp_path / "plan" / "runs.tsv", sep="\t").columns
    data = json.loads((tmp_path / "fit" / "fit.json").read_text())["data"]  # fit.json alone says it too
    assert data["train_samples"] == 200 and data["tokens_per_sample"] == 1
    assert data["max_run_epochs"] == pytest.approx(result.runs["epochs"].max())
    (target,) = data["targets"]
    assert target["C"] == 1e8 and target["epochs"] == pytest.approx(rec["epochs"], rel=0.05)
    page = report_page.summary_page(result.fit, on_disk, result.runs.assign(status="ok"))
    assert page.count(">epochs<") == 2 and page.count("runs repeat data") == 1  # recommendations, runs; one line
