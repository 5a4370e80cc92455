"""Where the training worker stops paying: one job's start-up and training speed, worker against its own process.

Trains runs of a finished sweep again with ``flops-fit train`` (the train rule's command), alternating
a job in its own process and a job through the warm worker (``FLOPS_FIT_WORKER``), and prints per run
the median job wall time, its time outside the run (job wall − ``wall_time_s``), and ``train_time_s``
in both ways. The saving per job is the start-up difference; a run trains as fast either way if the
``train_time_s`` ratio is 1, so no run is too long for the worker.

    python bench/worker_crossover.py SWEEP_DIR [--runs RUN_ID ...] [--repeats 3]

``SWEEP_DIR`` is a finished sweep's working directory (e.g. one made by ``bench/train_phase.py``);
by default its smallest and largest planned runs are trained.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from flops_fit.worker.client import WORKER_ENV


def train_once(sweep: Path, run_id: str, out: Path, worker: bool) -> dict:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, WORKER_ENV: "300" if worker else "0"}
    cmd = [sys.executable, "-m", "flops_fit", "train", "--config", "results/validated.json",
           "--runs", "results/plan/runs.tsv", "--run-id", run_id, "--out-dir", str(out / run_id),
           "--checkpoint-dir", str(out / "ck"), "--threads", "1"]
    start = time.monotonic()
    subprocess.run(cmd, cwd=sweep, env=env, check=True, capture_output=True)
    job = time.monotonic() - start
    metrics = json.loads((out / run_id / "metrics.json").read_text())
    return {"job": job, "outside": job - metrics["wall_time_s"], "train": metrics["train_time_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--runs", nargs="*")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sweep = args.sweep.resolve()
    runs = pd.read_csv(sweep / "results" / "plan" / "runs.tsv", sep="\t")
    run_ids = args.runs or [runs.loc[runs["achieved_flops"].idxmin(), "run_id"], runs.loc[runs["achieved_flops"].idxmax(), "run_id"]]
    out = sweep / "crossover"
    train_once(sweep, run_ids[0], out / "warm-up", worker=True)  # start the worker outside the timings
    print(f"{'run':<28} {'mode':<8} {'job s':>6} {'outside s':>9} {'train s':>7}")
    for run_id in run_ids:
        results: dict[str, list[dict]] = {"process": [], "worker": []}
        for repeat in range(args.repeats):
            for mode in (["process", "worker"] if repeat % 2 == 0 else ["worker", "process"]):
                results[mode].append(train_once(sweep, run_id, out / mode, worker=mode == "worker"))
        medians = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in results.items()}
        for mode, m in medians.items():
            print(f"{run_id:<28} {mode:<8} {m['job']:>6.2f} {m['outside']:>9.2f} {m['train']:>7.2f}")
        print(f"{run_id:<28} start-up saved {medians['process']['outside'] - medians['worker']['outside']:.2f} s, "
              f"train_time worker/process {medians['worker']['train'] / medians['process']['train']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
