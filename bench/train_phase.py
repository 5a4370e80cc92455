"""The train phase of a sweep: per-job start-up with and without the training worker, against a bare script.

Runs one config (default ``.test/config/config.yaml``) through the real workflow (the ``snakemake``
CLI) with ``worker.enabled`` false and true, then trains the same planned runs with a bare script
(one process per core, each run through ``pipeline.train_run``: no Snakemake, no start-up per run;
the calibration runs and each placement wave in turn, as the workflow must). For each it prints:

* ``train phase``: wall time during which at least one train job ran (a ``python`` shim on PATH
  records each ``flops-fit train`` job's start and end),
* ``sum train``: Σ ``train_time_s`` of the runs (time in the training loop itself),
* ``ratio``: train phase / (sum train / cores): 1 is perfect packing with no overhead.

    python bench/train_phase.py [--config .test/config/config.yaml] [--cores 2] [--out bench_results/train_phase]
                                [--modes process worker bare] [--repeats 1]

Modes alternate in order over ``--repeats`` so load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODES = {"process": "process per job", "worker": "worker", "bare": "bare script"}

SHIM = """#!/bin/bash
# records the start and end of each flops-fit train/stable job, then behaves as python
case " $* " in
  *" -m flops_fit train "*|*" -m flops_fit stable "*)
    start=$(date +%s.%N); "{python}" "$@"; rc=$?; echo "$start $(date +%s.%N)" >> "{log}"; exit $rc;;
esac
exec "{python}" "$@"
"""


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``intervals``: the wall time during which any of them was running."""
    total, end = 0.0, -float("inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def sum_train_time(results: Path) -> tuple[float, int]:
    runs = [json.loads(p.read_text()) for p in (results / "runs").glob("*/metrics.json")]
    return sum(m["train_time_s"] for m in runs), len(runs)


def timed_snakemake(code: Path, folder: Path, cores: int, env: dict[str, str]) -> float:
    """Wall seconds of ``snakemake`` with the workflow of ``code`` in ``folder`` (its log in snakemake.log)."""
    start = time.monotonic()
    with open(folder / "snakemake.log", "w") as log:
        subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(code / "workflow" / "Snakefile"),
                        "--directory", str(folder), "--cores", str(cores), "--workflow-profile", "none"],
                       cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    return time.monotonic() - start


def run_workflow(config: Path, folder: Path, worker: bool, cores: int) -> dict:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "config").mkdir(parents=True)
    cfg = yaml.safe_load(config.read_text())
    cfg["worker"] = {"enabled": worker}
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shims, jobs = folder / "shim", folder / "train_jobs.txt"
    shims.mkdir()
    shim = shims / "python"
    shim.write_text(SHIM.format(python=sys.executable, log=jobs))
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    wall = timed_snakemake(ROOT, folder, cores, env)
    intervals = [tuple(map(float, line.split())) for line in jobs.read_text().splitlines()]
    train, n = sum_train_time(folder / "results")
    return {"wall": wall, "phase": union_seconds(intervals), "jobs": sum(b - a for a, b in intervals),
            "train": train, "runs": n}


def _bare_run(args: tuple) -> float:
    config, run, out = args
    from flops_fit import pipeline
    from flops_fit.validation import build_objects

    metrics = pipeline.train_run(config, run, build_objects(config), out / run["run_id"], out / "ck" / run["run_id"],
                                 threads=1)
    return metrics["train_time_s"]


def run_bare(sweep: Path, folder: Path, cores: int) -> dict:
    """The planned runs of a finished sweep, trained phase by phase in a pool of ``cores`` processes."""
    from flops_fit import pipeline, planning

    results = sweep / "results"
    config = pipeline.read_validated(results / "validated.json")
    calibration = planning.read_runs_table(results / "plan" / "lr_calibration.tsv")
    sweep_runs = planning.read_runs_table(results / "plan" / "runs.tsv")
    phases = [calibration] + [sweep_runs[sweep_runs["wave"] == w] for w in sorted(sweep_runs["wave"].unique())]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    train, phase_wall = 0.0, 0.0
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        for table in phases:
            rows = sorted((planning.run_row(table, r) for r in table["run_id"]), key=lambda r: -float(r["achieved_flops"]))
            start = time.monotonic()
            train += sum(pool.map(_bare_run, [(config, row, folder) for row in rows], chunksize=1))
            phase_wall += time.monotonic() - start
    return {"wall": phase_wall, "phase": phase_wall, "jobs": phase_wall * cores, "train": train,
            "runs": sum(len(t) for t in phases)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / ".test" / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "train_phase")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="bare trains the runs planned by the worker mode's sweep (run it too, or before)")
    args = parser.parse_args()
    out = args.out.resolve()
    rows: dict[str, list[dict]] = {MODES[mode]: [] for mode in args.modes}
    for repeat in range(args.repeats):
        workflow_modes = [mode for mode in ("process", "worker") if mode in args.modes]
        for mode in workflow_modes if repeat % 2 == 0 else workflow_modes[::-1]:
            rows[MODES[mode]].append(run_workflow(args.config.resolve(), out / mode, mode == "worker", args.cores))
        if "bare" in args.modes:
            import torch

            torch.set_num_threads(1)  # the parent only forks the pool; its children set their own threads
            rows[MODES["bare"]].append(run_bare(out / "worker", out / "bare", args.cores))
    print(f"config: {args.config}  cores: {args.cores}  repeats: {args.repeats}")
    print(f"{'mode':<16} {'runs':>4} {'sweep wall':>10} {'train phase':>11} {'sum jobs':>9} {'sum train':>9} {'ratio':>6}")
    for name, results in rows.items():
        for r in results:
            ratio = r["phase"] / (r["train"] / args.cores)
            print(f"{name:<16} {r['runs']:>4} {r['wall']:>9.1f}s {r['phase']:>10.1f}s {r['jobs']:>8.1f}s "
                  f"{r['train']:>8.1f}s {ratio:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
