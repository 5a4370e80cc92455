"""The real `snakemake` CLI on the tiny `.test` sweep, in a temporary directory: every rule, every output.

The session's one `.test` sweep (conftest) is read here; the reruns check that finished runs are
never retrained (the extension works on a copy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_sweep
from workflow_support import ROOT, snakemake



@pytest.fixture
def sweep(test_sweep) -> Path:
    return test_sweep


def test_every_output_is_written(sweep):
    runs = pd.read_csv(sweep / "results/plan/runs.tsv", sep="\t")
    assert len(runs) == 8 and runs.run_id.is_unique
    assert ((runs.achieved_flops / runs.planned_flops - 1).abs() <= 0.01).all()
    for run_id in runs.run_id:
        metrics = json.loads((sweep / "results/runs" / run_id / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["eval_loss"] > 0
        assert metrics["tokens"] == runs.set_index("run_id").loc[run_id, "tokens"]
        curve = pd.read_csv(sweep / "results/runs" / run_id / "curve.tsv", sep="\t")
        assert curve.step.iloc[-1] == metrics["steps"]
        assert "step" in (sweep / "logs/train" / f"{run_id}.log").read_text()
        assert not (sweep / "results/checkpoints" / run_id).exists()  # removed once metrics are written
    fit = json.loads((sweep / "results/fit/fit.json").read_text())
    assert {"C", "N_opt", "D_opt", "loss_opt", "interior"} <= set(fit["isoflop"]["per_budget"][0])
    assert len(fit["isoflop"]["per_budget"]) == 2
    for name in ("isoflops", "optima", "loss_curves"):
        assert (sweep / "results/plots" / f"{name}.png").stat().st_size > 10_000
        assert (sweep / "results/plots" / f"{name}.svg").exists()
    assert json.loads((sweep / "results/validated.json").read_text())["config"]["budgets"] == [1e10, 3e10]


def test_second_run_does_nothing(sweep):
    result = snakemake(sweep, "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_extending_the_config_trains_only_the_new_runs(sweep, tmp_path):
    sweep = copy_sweep(sweep, tmp_path / "extended")
    metrics = sorted((sweep / "results/runs").glob("*/metrics.json"))
    before = {p: p.stat().st_mtime_ns for p in metrics}
    config = yaml.safe_load((sweep / "config/config.yaml").read_text())
    config["budgets"].append("1e11")
    (sweep / "config/config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(sweep)
    assert result.returncode == 0, result.stderr[-5000:]
    runs = pd.read_csv(sweep / "results/plan/runs.tsv", sep="\t")
    assert len(runs) == 12
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "a finished run was retrained"
    assert len([p for p in (sweep / "results/runs").glob("*/metrics.json") if "_lrx" not in str(p)]) == 12


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
