"""``sweep.precision`` through the real snakemake CLI: on the finished `.test` sweep, a precision it
cannot reach under ``sweep.max_flops`` stops at the cap and says what the next wave would cost; a
larger cap only adds runs (nothing finished is retrained) and ``--dry-run`` shows the next wave."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from conftest import copy_sweep
from workflow_support import snakemake


def placed_flops(workdir: Path) -> float:
    runs = pd.read_csv(workdir / "results" / "plan" / "runs.tsv", sep="\t")
    return float(runs.loc[runs["role"].isin(["sweep", "replicate"]), "achieved_flops"].sum())


def with_precision(workdir: Path, max_flops: float) -> None:
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    # x1.01 at 1e11 is beyond any wave of this tiny sweep: the cap decides where it stops
    config["sweep"].update(precision={"budget": 1e11, "N_star": 1.01, "sizes_per_wave": 2}, max_flops=max_flops)
    path.write_text(yaml.safe_dump(config))


def finished_runs(workdir: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (workdir / "results" / "runs").glob("*/metrics.json")}


def test_a_precision_sweep_stops_at_its_cap_and_a_larger_cap_only_adds_runs(test_sweep, tmp_path):
    workdir = copy_sweep(test_sweep, tmp_path / "sweep")
    spent = placed_flops(workdir)
    before = finished_runs(workdir)

    # 1. a cap just above what the ladder spent: no wave fits, the outlook says what the next would cost
    with_precision(workdir, spent * 1.01)
    first = snakemake(workdir)
    assert first.returncode == 0, first.stderr[-4000:]
    assert finished_runs(workdir) == before  # nothing retrained, nothing added
    outcome = json.loads((workdir / "results" / "plan" / "design.json").read_text())["outcome"]
    assert outcome["status"] == "cap" and outcome["candidate"]["flops"] > spent * 0.01
    fit = json.loads((workdir / "results" / "fit" / "fit.json").read_text())
    outlook = fit["design"]["outlook"]
    assert outlook["status"] == "cap" and outlook["steps"] and "precision not reached (cap)" in outlook["message"]
    assert f"flops-fit: {outlook['message']}" in first.stderr  # the console's last lines
    assert "flops-fit: waves toward N* at 1e+11 within x1.01: 0: " in first.stderr  # per wave, FLOPs placed
    page = (workdir / "results" / "report" / "summary.html").read_text()
    assert "Sweep design: asked for: N* at 1e+11 within x1.01" in page

    # 2. --dry-run with a larger cap shows the next wave's place job; the run adds only new runs
    with_precision(workdir, spent * 4)
    dry = snakemake(workdir, "--dry-run")
    assert dry.returncode == 0 and "checkpoint place:" in dry.stdout and "wave=" in dry.stdout, dry.stdout[-3000:]
    second = snakemake(workdir)
    assert second.returncode == 0, second.stderr[-4000:]
    after = finished_runs(workdir)
    assert {k: after[k] for k in before} == before and len(after) > len(before)
    assert spent < placed_flops(workdir) <= spent * 4
    record = json.loads((workdir / "results" / "fit" / "fit.json").read_text())["design"]
    assert record["waves"][-1]["width_before"] is not None  # a chosen wave records the interval it narrowed
