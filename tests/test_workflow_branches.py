"""``sweep.reuse: branches`` through the real snakemake CLI: stable segments, cooldowns, cost, extension.

A tiny sweep (two budgets in waves, then a third budget added): the cooldowns branch off shared stable
runs, ``fit.json`` records a trained compute below the separate runs', the summary page shows the
saving, and a budget added later extends each stable run by its new segment only: the earlier branch
checkpoints and every finished run are left untouched.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from workflow_support import ROOT, snakemake

pytestmark = pytest.mark.slow  # two workflow runs: about 3 minutes on 2 shared cores


def _config() -> dict:
    config = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    sweep = config["sweep"]
    del sweep["steps"]  # branches need one batch per size
    sweep.update({"batch_size": 64, "reuse": "branches", "lr_calibration": {"enabled": False}})
    config["fit"]["bootstrap"] = 20
    return config


def test_a_branches_sweep_shares_stable_runs_and_a_later_budget_extends_them(tmp_path):
    (tmp_path / "config").mkdir()
    config = _config()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    runs = pd.read_csv(tmp_path / "results/plan/runs.tsv", sep="\t", keep_default_na=False)
    branched = runs[runs["branch_of"] != ""]
    shared = branched.groupby("branch_of").filter(lambda rows: len(rows) >= 2)
    assert len(shared), "no size shares a stable run"
    for row in branched.itertuples():
        assert (tmp_path / f"results/stable/{row.branch_of}/step{row.branch_step}/checkpoint.pt").exists()
        metrics = json.loads((tmp_path / f"results/runs/{row.run_id}/metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["resumed_from_step"] == row.branch_step
        assert metrics["tokens"] == row.tokens  # C counts the whole history: stable prefix + cooldown
    cost = json.loads((tmp_path / "results/fit/fit.json").read_text())["cost"]
    assert cost["trained_flops"] < cost["separate_runs_flops"]
    assert cost["separate_runs_flops"] == pytest.approx(runs["achieved_flops"].sum())
    page = (tmp_path / "results/report/summary.html").read_text()
    assert "shared stable runs" in page and "branch_of" in page
    assert "Nothing to be done" in (snakemake(tmp_path, "--dry-run").stdout)

    # a larger budget later: only its new segments and runs train
    checkpoints = sorted((tmp_path / "results/stable").glob("*/step*/checkpoint.pt"))
    metrics = sorted((tmp_path / "results/runs").glob("*/metrics.json"))
    before = {p: p.stat().st_mtime_ns for p in checkpoints + metrics}
    config["budgets"].append(6e10)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "a finished segment or run was retrained"
    grown = pd.read_csv(tmp_path / "results/plan/runs.tsv", sep="\t", keep_default_na=False)
    new = grown[grown["budget"] == 6e10]
    extended = new[new["branch_of"].isin(set(branched["branch_of"]))]
    assert len(extended), "no run of the new budget extends an existing stable run"
    for row in extended.itertuples():  # the new segment starts from the last earlier branch point
        earlier = branched.loc[branched["branch_of"] == row.branch_of, "branch_step"].max()
        assert row.branch_step > earlier
        assert (tmp_path / f"results/stable/{row.branch_of}/step{row.branch_step}/checkpoint.pt").exists()
