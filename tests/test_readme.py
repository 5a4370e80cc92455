"""README.md's "Using it on your own model" examples run as written (its code blocks, copied verbatim)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flops_fit.config import prepare_config
from flops_fit.pipeline import calibration_plan_step, plan_context, first_window
from flops_fit.validation import build_objects
from flops_fit.validation import validate_config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def block(first_line: str) -> str:
    """The fenced code block of README.md whose first line is ``first_line``."""
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", README, flags=re.S)
    (found,) = [b for b in blocks if b.startswith(first_line + "\n")]
    return found


def test_config_example_with_its_files_validates_and_plans(tmp_path, monkeypatch):
    """The YAML example and the two files it names: validate and plan (smoke test included); no training."""
    monkeypatch.chdir(tmp_path)
    for name in ("my_model.py", "my_data.py"):
        (tmp_path / name).write_text(block(f"# {name}"))
    config = prepare_config(yaml.safe_load(block("# config/config.yaml")))
    validate_config(config)
    table, warnings = calibration_plan_step(config, tmp_path / "calibration.tsv")  # smoke test, then the lr sweep
    assert len(table) == 3 * len(config["sweep"]["lr_calibration"]["factors"]) and (table.tokens_per_sample == 1).all()
    assert not any("broadcast" in w for w in warnings)
    window, _ = first_window(config, plan_context(config, *build_objects(config)[:3]))
    assert len(window) == 6 and set(window) <= set(config["model"]["sizes"])


@pytest.mark.slow  # a real calibrated, adaptive sweep: minutes on 2 CPU cores
def test_python_example_runs_as_written(tmp_path, monkeypatch):
    """The find_optimal example, trained for real: torch.nn.CrossEntropyLoss() on a GPT's (B, T, V) logits."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(block("import torch, flops_fit"), namespace)
    result = namespace["result"]
    assert len(result.optima) == 3 and (result.runs.groupby("budget").size() >= 4).all()
    assert result.optima["loss_opt"].dropna().between(1, 5).all()
    assert (tmp_path / "results_mymodel/plan/lr_calibration.json").exists()
    assert (tmp_path / "results_mymodel/fit/fit.json").exists()


def test_no_tracked_file_holds_a_merge_conflict():
    """A merge resolved by hand once left README.md with both sides and their markers."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
    conflicted = [name for name in tracked if (root / name).is_file() and (root / name).stat().st_size < 2_000_000
                  and marker.search((root / name).read_text(errors="replace"))]
    assert not conflicted, f"merge conflict markers in {conflicted}"
