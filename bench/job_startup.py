"""Start-up per job: a whole sweep before and after its non-train rules ran in the warm worker.

Runs one config (default ``.test/config/config.yaml``) through the real workflow (the ``snakemake``
CLI) twice per repeat, alternating: once with a clone of ``--before`` (a commit whose non-train rules
still ran Snakemake ``script:`` directives, each job a new Python importing torch), once with this
working tree. Each sweep gets its own folder, so its own (cold) worker. Per sweep it prints:

* ``wall``: the whole sweep, validate to summary page;
* ``non-train wall``: the part of it with no train or stable job running;
* ``Σ non-train jobs``: the non-train jobs' own time (start to end of each, from Snakemake's
  ``.snakemake/metadata`` records), and ``Σ train jobs`` likewise;

then each measure's median ratio before / after.

    python bench/job_startup.py [--config .test/config/config.yaml] [--before bad3d8a] [--cores 2]
                                [--repeats 1] [--out bench_results/job_startup]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from train_phase import timed_snakemake, union_seconds

ROOT = Path(__file__).resolve().parents[1]
#: the last commit whose non-train rules were ``script:`` directives (each job its own Python)
BEFORE = "bad3d8a"
TRAIN_RULES = ("train", "stable")
MEASURES = ("wall", "non-train wall", "Σ non-train jobs", "Σ train jobs")


def job_intervals(folder: Path) -> list[tuple[str, float, float]]:
    """(rule, start, end) of every job of the sweep in ``folder``, from Snakemake's per-output records
    (one record per output file; a job's outputs share its end time)."""
    jobs: dict[tuple[str, float], float] = {}
    for path in (folder / ".snakemake" / "metadata").iterdir():
        record = json.loads(path.read_text())
        key = (record["rule"], record["endtime"])
        jobs[key] = min(jobs.get(key, record["starttime"]), record["starttime"])
    return [(rule, start, end) for (rule, end), start in jobs.items()]


def checkout(rev: str, folder: Path) -> Path:
    """A clone of this repository at ``rev``."""
    if folder.exists():
        shutil.rmtree(folder)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "-q", rev], check=True)
    return folder


def run_sweep(code: Path, config: Path, folder: Path, cores: int) -> dict[str, float]:
    """The sweep with the workflow and flops_fit of ``code``, in a fresh ``folder``; its measures."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "config").mkdir(parents=True)
    shutil.copy(config, folder / "config" / "config.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    wall = timed_snakemake(code, folder, cores, env)
    jobs = job_intervals(folder)
    train = [(a, b) for rule, a, b in jobs if rule in TRAIN_RULES]
    return {
        "wall": wall,
        "non-train wall": wall - union_seconds(train),
        "Σ non-train jobs": sum(b - a for rule, a, b in jobs if rule not in TRAIN_RULES),
        "Σ train jobs": sum(b - a for a, b in train),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / ".test" / "config" / "config.yaml")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with (default %(default)s)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "job_startup")
    args = parser.parse_args()
    out = args.out.resolve()
    codes = {"before": checkout(args.before, out / "before_code"), "after": ROOT}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    for repeat in range(args.repeats):
        for name in list(codes) if repeat % 2 == 0 else list(codes)[::-1]:
            rows[name].append(run_sweep(codes[name], args.config.resolve(), out / f"{name}{repeat}", args.cores))
    print(f"config: {args.config}  before: {args.before}  cores: {args.cores}  repeats: {args.repeats}")
    print(f"{'':<8}" + "".join(f"{m:>18}" for m in MEASURES))
    for name, results in rows.items():
        for r in results:
            print(f"{name:<8}" + "".join(f"{r[m]:>17.1f}s" for m in MEASURES))
    medians = {name: {m: statistics.median(r[m] for r in results) for m in MEASURES} for name, results in rows.items()}
    print(f"{'ratio':<8}" + "".join(f"{medians['before'][m] / medians['after'][m]:>17.2f}x" for m in MEASURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
