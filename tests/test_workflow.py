"""The real `snakemake` CLI on the tiny `.test` sweep, in a temporary directory: every rule, every output.

The session's one `.test` sweep (conftest) is read here; the reruns check that finished runs are
never retrained (the extension works on a copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


# ------------------------------------------------- non-train rules: `flops-fit script`, in the worker
#: the last commit whose non-train rules were Snakemake `script:` directives (a new Python per job)
SCRIPT_DIRECTIVES = "bad3d8a"


def _private_runtime() -> Path:
    """A socket folder of this test's own (short: a socket path stays under 108 characters), so that the
    only worker logs in it are those of the sweep the test runs."""
    return Path(tempfile.mkdtemp(prefix="ff", dir="/tmp"))


def _replot(sweep: Path, runtime: Path) -> subprocess.CompletedProcess:
    return snakemake(sweep, "results/plots/isoflops.png", "--forcerun", "plot", "--printshellcmds",
                     env={"XDG_RUNTIME_DIR": str(runtime)})


@pytest.mark.parametrize("enabled", [True, False])
def test_a_non_train_rule_runs_its_script_in_the_worker_or_its_own_process(sweep, tmp_path, enabled):
    """The plot rule runs `flops-fit script .../plot.py` with the job's arguments: in a child of the worker
    (whose log names the job's command line), or with ``worker.enabled: false`` in its own process."""
    work = copy_sweep(sweep, tmp_path / "sweep")
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    config["worker"] = {"enabled": enabled}
    (work / "config/config.yaml").write_text(yaml.safe_dump(config))
    runtime = _private_runtime()
    try:
        result = _replot(work, runtime)
        assert result.returncode == 0, result.stderr[-5000:]
        command = 'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/plot.py --fit results/fit/fit.json'
        assert command in result.stdout + result.stderr  # --printshellcmds
        assert "wrote results/plots/isoflops.png" in (work / "logs/plot.log").read_text()
        logs = "".join(p.read_text() for p in runtime.glob("flops-fit-*/worker-*.log"))
        served = f"flops-fit script {ROOT}/workflow/scripts/plot.py --fit results/fit/fit.json"
        assert (served in logs) == enabled, logs
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_failing_rule_script_fails_its_job_with_the_error_in_the_rules_log(sweep, tmp_path):
    """A rule script that raises (here: plot reading a corrupt fit.json) fails the job, and its traceback is
    in the rule's log file, not only on Snakemake's console."""
    work = copy_sweep(sweep, tmp_path / "sweep")
    (work / "results/fit/fit.json").write_text("{not json")
    runtime = _private_runtime()
    try:
        result = _replot(work, runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert result.returncode != 0
    log = (work / "logs/plot.log").read_text()
    assert "plot.py failed" in log and "JSONDecodeError" in log, log


@pytest.mark.slow  # runs the .test sweep twice, once with a clone of the old code (about 3 min)
def test_a_sweep_finished_when_rules_were_scripts_retrains_nothing(tmp_path):
    """A `.test` sweep finished by the workflow of SCRIPT_DIRECTIVES, then run by this one: the non-train
    rules rerun once (their code changed) and reach the same results; no train job runs."""
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{SCRIPT_DIRECTIVES}^{{commit}}"]).returncode:
        pytest.skip(f"commit {SCRIPT_DIRECTIVES} is not in this clone")
    before = tmp_path / "before"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(before)], check=True)
    subprocess.run(["git", "-C", str(before), "checkout", "-q", SCRIPT_DIRECTIVES], check=True)
    work = tmp_path / "sweep"
    shutil.copytree(ROOT / ".test/config", work / "config")
    # that commit counted FLOPs as 6N by default; measured FLOPs (the default since) plan other runs
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["sweep"]["flops_per_token"] = "6N"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(before)}
    old = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(before / "workflow/Snakefile"),
                          "--cores", "2", "--workflow-profile", "none"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=900)
    assert old.returncode == 0, old.stderr[-5000:]
    trained = {p: p.stat().st_mtime_ns for p in (work / "results/runs").glob("*/metrics.json")}
    fit = (work / "results/fit/fit.json").read_text()
    validated_at = (work / "logs/validate.log").stat().st_mtime_ns
    result = snakemake(work)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "rule train" not in result.stderr and "localrule validate" in result.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in trained.items()), "a finished run was retrained"
    assert (work / "logs/validate.log").stat().st_mtime_ns > validated_at
    # the same numbers (later records, such as the design and the FLOPs curve, add keys)
    old_fit, new_fit = json.loads(fit), json.loads((work / "results/fit/fit.json").read_text())
    for part in ("isoflop", "parametric"):
        assert new_fit[part]["a"] == old_fit[part]["a"] and new_fit[part]["b"] == old_fit[part]["b"]
    for new, old in zip(new_fit["predictions"], old_fit["predictions"], strict=True):
        assert new["recommended"]["N"] == old["recommended"]["N"]
        assert new["recommended"]["D"] == pytest.approx(old["recommended"]["D"], rel=1e-12)
        assert new["recommended"]["ci"]["D"] == pytest.approx(old["recommended"]["ci"]["D"], rel=1e-12)


def test_a_dry_run_prints_every_rules_command_before_anything_is_planned(tmp_path):
    """`snakemake -n -p` on a fresh directory (the default profile prints commands): every rule's command
    can be formatted while the waves are not yet placed (no input name of the plan rule goes missing)."""
    shutil.copytree(ROOT / ".test/config", tmp_path / "config")
    result = snakemake(tmp_path, "--dry-run", "--printshellcmds", timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "flops_fit script" in result.stdout + result.stderr
