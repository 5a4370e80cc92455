"""training.threads (torch's threads of a run: execution, not identity) and the cost estimate before training."""

from __future__ import annotations

import json
import math

import pytest
import torch

import flops_fit
from flops_fit import pipeline
from flops_fit.config import prepare_config, sweep_config, training_identity
from flops_fit.examples.gpt import GPT, next_token_loss
from flops_fit.examples.markov import MarkovTokens

KWARGS = {"n_layer": 1, "vocab_size": 64, "block_size": 32, "head_dim": 8}
SWEEP = {"sizes_per_budget": 4, "steps": 20, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
         "placement": "fixed", "lr_calibration": {"enabled": False}, "seed_replicates": 0}


@pytest.fixture(scope="module")
def data():
    return MarkovTokens(vocab_size=64, seq_len=32, num_samples=4096, gamma=0.7)


def call(data, out, **overrides):
    args = dict(model_cls=GPT, model_size_param="d_model", model_kwargs=KWARGS, dataset=data, loss_fn=next_token_loss,
                compute_budgets=[1e9, 3e9], sizes=[8, 16, 24, 32, 48], eval_samples=64, output_dir=out, sweep=SWEEP,
                # 20-step runs learn little beyond the chain's unigram statistics, which the measured chance
                # level would call no learning; this test is about threads, so chance is ln V (fit.chance_loss)
                fit={"bootstrap": 5, "chance_loss": math.log(64)}, progress=False)
    return flops_fit.find_optimal(**{**args, **overrides})


def test_threads_is_execution_not_identity():
    """training.threads is out of the validate rule's and the train rule's rerun triggers."""
    config = {"training": {"threads": 3, "device": "cpu"}, "worker": {}, "budgets": [1e9]}
    assert sweep_config(config) == {"training": {"device": "cpu"}, "budgets": [1e9]}
    assert training_identity(config["training"]) == {"device": "cpu"}


def test_threads_is_a_documented_config_key():
    from flops_fit.config import load_schema

    threads = load_schema()["properties"]["training"]["properties"]["threads"]
    assert threads["default"] is None and "description" in threads


def test_the_cost_estimate_exists_before_any_run_trains(data, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise RuntimeError("training started")

    monkeypatch.setattr(pipeline, "train_run", no_training)
    with pytest.raises(RuntimeError, match="training started"):
        call(data, tmp_path / "out", threads=1)
    cost = json.loads((tmp_path / "out/plan/cost_estimate.json").read_text())
    assert cost["total_flops"] > 0 and cost["flops_per_second"] > 0 and cost["wall_seconds"] > 0
    assert cost["first_wave_flops"] > 0 and cost["threads"] == 1 and cost["planned_runs"] == 8
    assert "1 threads" in cost["measured_on"]


def test_threads_reaches_every_run_and_changing_it_retrains_nothing(data, tmp_path):
    before = torch.get_num_threads()
    call(data, tmp_path / "out", threads=1)
    assert torch.get_num_threads() == before  # given back after the sweep
    metrics = sorted((tmp_path / "out/runs").glob("*/metrics.json"))
    assert len(metrics) == 8
    assert {json.loads(p.read_text())["threads"] for p in metrics} == {1}
    stamps = {p: p.stat().st_mtime_ns for p in metrics}
    call(data, tmp_path / "out", training={"threads": 2})
    assert {p: p.stat().st_mtime_ns for p in metrics} == stamps, "a changed training.threads retrained a run"


def test_the_plan_step_writes_the_cost_estimate_with_the_workflows_threads(tmp_path):
    """The workflow's calibration_plan: the estimate is measured with a run's threads and cores // threads runs."""
    config = prepare_config({
        "model": {"class": "flops_fit.examples.gpt:GPT", "size_param": "d_model", "kwargs": KWARGS, "sizes": [8, 16, 24, 32, 48]},
        "dataset": {"target": "flops_fit.examples.markov:MarkovTokens",
                    "kwargs": {"vocab_size": 64, "seq_len": 32, "num_samples": 4096}},
        "loss": {"target": "flops_fit.examples.gpt:next_token_loss"},
        "budgets": [1e9, 3e9], "sweep": {**SWEEP, "lr_calibration": {"enabled": True}}, "training": {"device": "cpu"},
    })
    before = torch.get_num_threads()
    table, notes = pipeline.calibration_plan_step(config, tmp_path / "cal.tsv", tmp_path / "cost.json", threads=1, cores=2)
    assert torch.get_num_threads() == before
    cost = json.loads((tmp_path / "cost.json").read_text())
    assert cost["calibration_flops"] == pytest.approx(float(table["achieved_flops"].sum())) and len(table)
    assert cost["parallel_runs"] == 2 and cost["flops_per_second"] > 0 and cost["wall_seconds"] > 0
    assert any(note.startswith("cost estimate:") for note in notes)
