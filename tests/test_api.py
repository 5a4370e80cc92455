"""find_optimal(): validation before any training, then the workflow's pipeline in-process."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import flops_fit
from flops_fit.errors import ConfigError
from flops_fit.examples.gpt import GPT, next_token_loss
from flops_fit.examples.markov import MarkovTokens
from flops_fit.fitting.records import BudgetOptimum
from flops_fit.paths import Results

KWARGS = {"n_layer": 1, "vocab_size": 64, "block_size": 32, "head_dim": 8}
SIZES = [8, 16, 24, 32, 48]


@pytest.fixture(scope="module")
def data():
    return MarkovTokens(vocab_size=64, seq_len=32, num_samples=16384, gamma=0.7)


def call(data, tmp_path, **overrides):
    args = dict(
        model_cls=GPT, model_size_param="d_model", model_kwargs=KWARGS, dataset=data,
        loss_fn=next_token_loss, compute_budgets=[1e10, 3e10], sizes=SIZES, target_budgets=[1e11],
        eval_samples=128, output_dir=tmp_path / "out",
        sweep={"sizes_per_budget": 4, "steps": 60, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
               "placement": "fixed", "lr_calibration": {"enabled": False}, "seed_replicates": 0,
               # 6N: the windows these tests assert on bracket both budgets in 6N FLOPs; in measured FLOPs
               # (1.07-1.28x 6N here) C=3e10's optimum lies above d_model 48 (tests/test_measured_flops.py)
               "flops_per_token": "6N"},
        fit={"bootstrap": 30},
    )
    return flops_fit.find_optimal(**{**args, **overrides})


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def swept(data, tmp_path_factory) -> tuple[Path, flops_fit.ScalingResult, list[str]]:
    """One real sweep (8 runs), trained once for the tests below; its folder, result and progress lines."""
    tmp_path = tmp_path_factory.mktemp("api")
    logger, lines = logging.getLogger("flops_fit"), Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        result = call(data, tmp_path)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(logging.NOTSET)
    return tmp_path, result, lines.lines


def test_find_optimal_returns_a_real_result_and_resumes(data, swept):
    tmp_path, result, _ = swept
    assert len(result.runs) == 8 and (tmp_path / "out/fit/fit.json").exists()
    assert len(result.optima) == 2 and result.optima["loss_opt"].between(1, 5).all()
    assert result.predictions["C"].tolist() == [1e11]
    assert (tmp_path / "out/plots/isoflops.png").exists()
    assert "ScalingResult(8 runs" in repr(result) and "1e+11" in repr(result)
    metrics = sorted((tmp_path / "out/runs").glob("*/metrics.json"))
    stamps = [p.stat().st_mtime_ns for p in metrics]
    again = call(data, tmp_path)  # same plan: nothing is retrained
    assert [p.stat().st_mtime_ns for p in metrics] == stamps
    assert again.fit.isoflop.per_budget == result.fit.isoflop.per_budget


def test_find_optimal_writes_the_summary_page_and_validated_json_where_the_workflow_does(swept):
    """README: find_optimal "writes the same files" as the workflow, the summary page and validated.json included."""
    out = Results(swept[0] / "out")
    validated = json.loads(out.validated.read_text())
    assert validated["config"]["model"]["size_param"] == "d_model"
    assert validated["summary"]["model"]["resolved"].endswith("GPT")
    assert set(validated["summary"]["model"]["params_by_size"]) == {str(s) for s in SIZES}
    assert out.summary_page.exists() and "<html" in out.summary_page.read_text().lower()
    assert len(pd.read_csv(out.report_runs, sep="\t")) == len(swept[1].runs)


def test_verify_trains_the_recommended_size_and_its_neighbours_outside_the_fit(data, swept, tmp_path):
    """find_optimal(verify=True) on a copy of the finished sweep: only the verification runs are trained,
    and the result says whether the recommended size was the observed optimum."""
    shutil.copytree(swept[0] / "out", tmp_path / "out")
    fit = {"bootstrap": 30, "recommend_from": "parametric"}
    result = call(data, tmp_path, verify=True, fit=fit)
    table = result.verification
    assert len(table) == 3 and table["run_id"].str.endswith("_verify").all()  # N*/2, N*, 2N*
    assert not set(table["run_id"]) & set(result.runs["run_id"])
    row = table[table["recommended"]].iloc[0]
    assert row["rel_error"] == pytest.approx(row["observed_loss"] / row["predicted_loss"] - 1)
    verdict = f"the recommended d_model = {row['size']} is {'' if row['observed_best'] else 'NOT '}the observed optimum"
    assert (tmp_path / "out/verify/verify.tsv").exists() and f"verify C = 1e+11: {verdict}" in repr(result)
    assert result.fit.n_runs == 8  # the fit saw the sweep only
    stamp = (tmp_path / "out/runs" / row["run_id"] / "metrics.json").stat().st_mtime_ns
    alone = call(data, tmp_path, verify=True, verify_sizes=1, fit=fit)  # the recommended run, already trained
    assert alone.verification["run_id"].tolist() == [row["run_id"]]
    assert (tmp_path / "out/runs" / row["run_id"] / "metrics.json").stat().st_mtime_ns == stamp


def test_a_loss_floor_from_a_reference_bounds_the_law(data, swept, tmp_path):
    """fit.loss_floor as in a config file, on a copy of the finished sweep: nothing is retrained, the
    chain's entropy rate is recorded and no loss the law predicts is below it."""
    shutil.copytree(swept[0] / "out", tmp_path / "out")
    floor = {"target": "flops_fit.examples.markov:entropy_rate", "kwargs": {"vocab_size": 64, "gamma": 0.7}}
    result = call(data, tmp_path, fit={"bootstrap": 30, "loss_floor": floor})
    par = result.fit.parametric
    assert par.loss_floor == data.entropy_rate and par.E >= data.entropy_rate
    assert all(p.loss >= data.entropy_rate for p in result.fit.predictions)
    assert min(result.fit.frontier.loss) >= data.entropy_rate
    assert result.fit.n_runs == 8 and len(result.runs) == 8


def test_a_bad_loss_floor_reference_fails_before_any_training(data, tmp_path):
    with pytest.raises(ConfigError, match=r"^fit.loss_floor.target: .*no attribute 'entropy_rat'.*Did you mean 'entropy_rate'"):
        call(data, tmp_path, fit={"loss_floor": {"target": "flops_fit.examples.markov:entropy_rat"}})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"loss_fn": None}, TypeError, "loss_fn is required"),
        ({"loss_fn": torch.nn.CrossEntropyLoss}, TypeError, r"CrossEntropyLoss\(\)"),
        ({"dataset": None}, TypeError, "dataset is required"),
        ({"dataset": [1, 2, 3]}, TypeError, "list"),
        ({"model_size_param": "width"}, TypeError, "width"),
        ({"compute_budgets": None}, TypeError, "compute_budgets is required"),
    ],
)
def test_bad_input_fails_before_any_training(data, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        call(data, tmp_path, **overrides)
    assert not (tmp_path / "out").exists()


def test_every_independent_problem_is_reported_at_once_with_the_documents_messages(data, tmp_path):
    # the interface document's call has no sizes: that is fine now, and its own messages come first
    with pytest.raises(TypeError) as info:
        call(data, tmp_path, sizes=None, dataset=None, loss_fn=None, compute_budgets=None)
    message = str(info.value)
    assert message.startswith("find_optimal() has 3 problems:")
    assert "1. dataset is required" in message and "2. loss_fn is required" in message
    assert "3. compute_budgets is required" in message and "sizes" not in message
    assert not (tmp_path / "out").exists()


def test_optima_show_whether_each_minimum_is_interior(swept):
    optima = swept[1].optima
    assert list(optima.columns) == ["C", "N_opt", "D_opt", "loss_opt", "interior", "reason"]
    assert optima["interior"].tolist() == [True, True] and optima["reason"].tolist() == ["", ""]
    refused = {"C": 1e12, "N_opt": 5e5, "D_opt": 3e5, "loss_opt": 2.0, "interior": False,
               "reason": "minimum at the largest size", "sd_lnN_opt": None, "n_runs": 4}
    fit = dataclasses.replace(swept[1].fit, isoflop=dataclasses.replace(
        swept[1].fit.isoflop, per_budget=(BudgetOptimum.from_dict(refused),)))
    result = flops_fit.ScalingResult(fit=fit, runs=swept[1].runs, output_dir=Path("."))
    shown = repr(result.optima)  # what print() and a script show, at pandas' default 80 columns
    assert "interior" in shown and "False" in shown and "minimum at the largest size" in shown


def test_progress_counts_every_run_with_an_eta(swept):
    lines = swept[2]
    runs = [line for line in lines if line.startswith("run ")]
    assert [line.split()[1] for line in runs] == [f"{i}/8" for i in range(1, 9)]
    assert all("eval loss" in line for line in runs)
    assert all(", ETA " in line for line in runs[:-1]) and ", ETA " not in runs[-1]
    done = [i for i, line in enumerate(lines) if "runs done" in line]
    assert len(done) == 1 and lines[done[0]].startswith("8/8 runs done: 8 trained in ")
    assert done[0] > max(i for i, line in enumerate(lines) if line.startswith("run "))


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_api import MarkovTokens, call
    data = MarkovTokens(vocab_size=64, seq_len=32, num_samples=16384, gamma=0.7)
    call(data, Path({folder!r}))
""")


def test_progress_reaches_a_script_that_configured_no_logging(swept):
    """A plain script (no logging set up, stderr not a terminal) sees the progress lines."""
    code = SCRIPT.format(tests=str(Path(__file__).parent), folder=str(swept[0]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count(": already trained, keeping its result") == 8 and "flops_fit: run 8/8 " in result.stderr
    assert "flops_fit: 8/8 runs done: 0 trained in 0 s, 8 already trained" in result.stderr


@pytest.mark.parametrize("change", [{"seed": 1}, {"max_warmup_fraction": 0.01}])
def test_a_changed_plan_row_is_retrained_and_only_it(data, swept, tmp_path, change):
    """One run identity (planning.run_identity) decides, as in the workflow: a new seed or warmup retrains
    every run (an identical call keeps all: test_an_identical_call_trains_nothing)."""
    import shutil

    shutil.copytree(swept[0], tmp_path / "copy")
    metrics = sorted((tmp_path / "copy/out/runs").glob("*/metrics.json"))
    stamps = {p: p.stat().st_mtime_ns for p in metrics}
    sweep = {"sizes_per_budget": 4, "steps": 60, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
             "placement": "fixed", "lr_calibration": {"enabled": False}, "seed_replicates": 0, **change}
    call(data, tmp_path / "copy", sweep=sweep)
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items()), "a run of the old seed was kept"


def test_a_precision_sweep_in_find_optimal_stops_at_its_cap_and_records_its_design(data, swept, tmp_path):
    """sweep.precision through find_optimal, on a copy of the finished sweep: an unreachable goal stops
    at the cap, and fit.json and plan/design.json say so and what the next wave would cost."""
    shutil.copytree(swept[0] / "out", tmp_path / "out")
    sweep = {"sizes_per_budget": 4, "steps": 60, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
             "lr_calibration": {"enabled": False}, "seed_replicates": 0, "flops_per_token": "6N",
             "precision": {"budget": 1e11, "N_star": 1.01, "start_budgets": 2}, "max_flops": 2e11}
    result = call(data, tmp_path, sweep=sweep)
    outlook = result.fit.design["outlook"]
    assert outlook["status"] == "cap" and outlook["steps"] and "sweep.max_flops" not in outlook["message"]
    assert outlook["message"].startswith("precision not reached (cap)")
    record = json.loads((tmp_path / "out" / "plan" / "design.json").read_text())
    assert record["outcome"]["status"] == "cap" and record["precision"]["N_star"] == 1.01
    placed = result.runs[result.runs["role"] == "sweep"]
    assert {1e10, 3e10} <= set(placed["budget"]) and placed["achieved_flops"].sum() <= 2e11
    assert record["outcome"]["flops_spent"] + record["outcome"]["candidate"]["flops"] > 2e11  # why it stopped
