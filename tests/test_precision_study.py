"""The precision study (bench/precision_study.py) end to end on two laws: the chosen sweep stops, its
FLOPs and interval are recorded beside fixed ladders, and where it says "reached" the interval is
within the goal. The full study (3 families, 20+ laws each) is a benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "precision_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("precision_study", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_precision_sweep_stops_within_its_goal_beside_fixed_ladders(study):
    base = study.cov.Design.default()
    goal = 2.2
    records = pd.DataFrame([r for trial in range(2) for r in study.run_trial(
        "chinchilla", trial, base, [(4, 6), (6, 6)], target=1e14, goal=goal, start=3, sizes_per_wave=4,
        noise=0.005, bootstrap=100)])
    mine = records[records["design"] == "precision"]
    assert set(mine["status"]) <= {"reached", "no_gain", "stalled"} and len(mine) == 2
    reached = mine[mine["status"] == "reached"]
    assert (reached["width"] <= goal).all()
    # the chosen sweep starts from 3 of the 4 default budgets: it never spends less than those
    assert (mine["flops"] >= 6 * sum(base.budgets[:3])).all()
    summary = study.summarise(records, goal)
    assert list(summary["design"]) == ["precision", "4 budgets x 6", "6 budgets x 6"]
    name, ratio, _ = study.ratios(records, goal)
    assert name == "none" or ratio > 0
