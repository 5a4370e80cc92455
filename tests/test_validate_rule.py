"""The workflow's validate rule, through the real ``snakemake`` CLI: a broken config stops the
workflow before any training job, and the console (not only a log file) says what to fix."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())


def run_snakemake(workdir: Path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--cores", "1", "--configfile", str(workdir / "config.yaml"),
        "--workflow-profile", "none", *targets,
    ]
    # the rule runs `python -m flops_fit script ...`: this interpreter's, as a user's activated environment
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def broken(section: str, **changes) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config[section] = {**config.get(section, {}), **changes}
    return config


def assert_stopped_before_training(workdir: Path, result: subprocess.CompletedProcess) -> str:
    console = result.stdout + result.stderr
    assert result.returncode != 0, console
    assert "Error in rule validate" in console
    assert not (workdir / "results" / "validated.json").exists()
    assert not (workdir / "results" / "plan").exists()
    assert not (workdir / "results" / "runs").exists()
    assert not (workdir / "logs" / "train").exists()
    return console


def test_valid_tiny_config_passes_validation(tmp_path):
    result = run_snakemake(tmp_path, TINY_CONFIG, "results/validated.json")
    assert result.returncode == 0, result.stdout + result.stderr
    validated = json.loads((tmp_path / "results" / "validated.json").read_text())
    params = validated["summary"]["model"]["params_by_size"]
    assert [params[str(s)] for s in sorted(TINY_CONFIG["model"]["sizes"])] == sorted(params.values())


def test_unresolvable_model_class_is_named_on_the_console(tmp_path):
    console = assert_stopped_before_training(
        tmp_path, run_snakemake(tmp_path, broken("model", **{"class": "flops_fit.examples.gpt:GTP"}))
    )
    assert "model.class: module 'flops_fit.examples.gpt' has no attribute 'GTP'" in console
    assert "Did you mean 'GPT'?" in console


def test_unaccepted_dataset_kwarg_is_named_on_the_console(tmp_path):
    kwargs = {**TINY_CONFIG["dataset"]["kwargs"], "seq_length": 32}
    console = assert_stopped_before_training(tmp_path, run_snakemake(tmp_path, broken("dataset", kwargs=kwargs)))
    assert "dataset.kwargs: MarkovTokens does not accept the argument 'seq_length'." in console
    assert "Did you mean 'seq_len'?" in console


def test_rejected_size_and_missing_loss_file_are_both_reported(tmp_path):
    config = broken("model", sizes=[8, 16, 24, 28, 32])  # head_dim 8: d_model=28 gives 3 heads, 28 % 3 != 0
    config["loss"] = {"target": "losses/lm.py:next_token_loss"}
    console = assert_stopped_before_training(tmp_path, run_snakemake(tmp_path, config))
    assert "the configuration has 2 problems:" in console
    assert "1. model.sizes: GPT cannot be built at this size:" in console
    assert "d_model=28: ValueError: d_model=28 must be divisible by n_head=3" in console
    assert f"2. loss.target: file 'losses/lm.py' not found (looked for {tmp_path}/losses/lm.py)" in console


def test_a_loss_floor_reference_is_resolved_before_training(tmp_path):
    """fit.loss_floor's reference would otherwise first be called by the fit rule, after the sweep."""
    console = assert_stopped_before_training(
        tmp_path, run_snakemake(tmp_path, broken("fit", loss_floor={"target": "flops_fit.examples.markov:entropy"}))
    )
    assert "fit.loss_floor.target: module 'flops_fit.examples.markov' has no attribute 'entropy'" in console
    assert "Did you mean 'entropy_rate'?" in console
