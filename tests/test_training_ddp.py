"""Multi-process training (DDP, gloo on CPU) under the real ``torchrun``: the same run as one process.

One ``torchrun --nproc_per_node=2`` launch trains every case below (the first ``run_training`` call
joins torchrun's process group, the later ones reuse it); the same cases then train in this process
and are compared. The workflow tests at the end run the train rule's own torchrun command.

The tolerance: in fp32, two half-batch gradients averaged by gloo are summed in another order than
one full-batch mean (~1e-7 relative per step), which training carries forward. Measured: 3e-8
relative on the final eval loss (even split), 0 (uneven 3/4 split), 4e-8 (accumulated DataLoader
micro-batches), 9e-8 (the workflow's GPT run, 99 samples split 49/50). 1e-4 leaves room for other
CPUs and BLAS builds, while training on half the batch per step (what a rank alone would train)
misses by ~15 % (``test_the_tolerance_separates_a_wrong_batch``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

from flops_fit.training import distributed, run_training
from flops_fit.training.distributed import Ranks
from training_support import Regression, eval_batches, loss_fn, mlp, run_row, settings

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-4
#: name -> (data kind, run-table overrides); every process rebuilds the same data
CASES = {
    # 8 samples per step, 4 per rank
    "even": ("map", {"steps": 30, "batch_size": 8}),
    # 7 samples per step: 3 and 4 per rank, weighted by tokens
    "uneven": ("map", {"steps": 20, "batch_size": 7}),
    # a DataLoader of 3-sample batches feeding 6-sample steps: 2 micro-batches per step, each split 1/2
    "loader": ("loader", {"steps": 20, "batch_size": 6}),
}
CHILD = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_training_ddp import CASES, train
out = Path({out!r})
rank = int(os.environ["RANK"])
results = {{name: train(name, out / name / f"rank{{rank}}", out / name / "ckpt") for name in CASES}}
# a kept checkpoint (last at step 15 of 20) is resumed by both ranks and ends where the first run ended
for key, out_dir in (("resumed", "resume"), ("resumed_again", "resume2")):
    results[key] = train("even", out / out_dir / f"rank{{rank}}", out / "resume" / "ckpt", steps=20, keep=True)
# what the engine does at exit, done here to see that it stops gloo's threads while Python runs
from flops_fit.training.distributed import leave_process_group
leave_process_group()
tasks = Path("/proc/self/task")
results["threads_after_leaving"] = sorted((t / "comm").read_text().strip() for t in tasks.iterdir()) if tasks.exists() else None
(out / f"results{{rank}}.json").write_text(json.dumps(results))
"""


def train(name: str, out_dir: Path, checkpoint_dir: Path, steps: int | None = None, keep: bool = False) -> dict:
    """Train case ``name`` (in whatever process group the environment gives); its metrics."""
    kind, row_overrides = CASES[name]
    model = mlp()
    row = run_row(model, **{**row_overrides, **({"steps": steps} if steps else {})})
    data = Regression() if kind == "map" else DataLoader(Regression(), batch_size=3)
    checkpoint = {"every_steps": 5, "keep": True} if keep else {}
    return run_training(
        row, model=model, train_data=data, eval_data=eval_batches(3), loss_fn=loss_fn,
        settings=settings(checkpoint=checkpoint), out_dir=out_dir, checkpoint_dir=checkpoint_dir,
    )


def _curve(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """The cases trained by 2 gloo processes under torchrun; the directory of their outputs."""
    out = tmp_path_factory.mktemp("ddp")
    code = CHILD.format(tests=str(Path(__file__).parent), out=str(out))
    (out / "child.py").write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(out / "child.py")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_train_the_same_run_as_one(two_processes, tmp_path, name):
    ranks = [json.loads((two_processes / f"results{r}.json").read_text())[name] for r in (0, 1)]
    one = train(name, tmp_path / "one", tmp_path / "ckpt")
    two = ranks[0]
    assert two["processes"] == 2 and one["processes"] == 1
    assert two["status"] == "ok" and two["steps"] == one["steps"]
    assert two["tokens"] == one["tokens"] == run_row(mlp(), **CASES[name][1])["tokens"]  # the plan's budget
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=REL)
    assert two["final_train_loss"] == pytest.approx(one["final_train_loss"], rel=REL)
    curve_two, curve_one = _curve(two_processes / name / "rank0" / "curve.tsv"), _curve(tmp_path / "one" / "curve.tsv")
    assert [r["tokens"] for r in curve_two] == [r["tokens"] for r in curve_one]
    assert [float(r["train_loss"]) for r in curve_two] == pytest.approx(
        [float(r["train_loss"]) for r in curve_one], rel=REL
    )
    # losses are summed over ranks, so both ranks hold the same numbers; rank 0 alone writes files
    assert ranks[1]["eval_loss"] == ranks[0]["eval_loss"]
    assert ranks[1]["final_train_loss"] == ranks[0]["final_train_loss"]
    assert not (two_processes / name / "rank1").exists()
    assert not (two_processes / name / "ckpt").exists()  # removed after the metrics, as for one process


def test_two_processes_resume_from_rank_zeros_checkpoint(two_processes):
    results = json.loads((two_processes / "results1.json").read_text())
    first, again = results["resumed"], results["resumed_again"]
    assert first["resumed_from_step"] is None and again["resumed_from_step"] == 15
    assert again["eval_loss"] == pytest.approx(first["eval_loss"], abs=1e-6)
    assert (two_processes / "resume" / "ckpt" / "checkpoint.pt").exists()


def test_the_tolerance_separates_a_wrong_batch(tmp_path):
    """Half the batch per step (what a rank alone, or unaveraged slices, would train) misses by far more than REL."""
    right = train("even", tmp_path / "a", tmp_path / "ca")
    model = mlp()
    half = run_training(
        run_row(model, steps=30, batch_size=4), model=model, train_data=Regression(), eval_data=eval_batches(3),
        loss_fn=loss_fn, settings=settings(), out_dir=tmp_path / "b", checkpoint_dir=tmp_path / "cb",
    )
    assert abs(half["eval_loss"] / right["eval_loss"] - 1) > 100 * REL


def test_leaving_the_group_stops_gloos_threads(two_processes):
    """After DDP runs, leaving the group must really free the gloo backend, not leave its threads to the exit."""
    for rank in (0, 1):
        threads = json.loads((two_processes / f"results{rank}.json").read_text())["threads_after_leaving"]
        if threads is None:
            pytest.skip("no /proc/self/task to list threads")
        assert not [t for t in threads if "gloo" in t], threads


class FakeDist:
    """Records what leave_process_group asks of torch.distributed."""

    def __init__(self, initialized: bool):
        self.initialized, self.calls = initialized, []

    def is_initialized(self) -> bool:
        return self.initialized

    def barrier(self) -> None:
        self.calls.append("barrier")

    def destroy_process_group(self) -> None:
        self.calls.append("destroy")


@pytest.mark.parametrize(
    "initialized, failed, calls",
    [(True, False, ["barrier", "destroy"]), (True, True, ["destroy"]), (False, False, [])],
    ids=["normal exit: wait for every rank", "exit on an error: no wait", "group already destroyed"],
)
def test_leaving_the_group_at_exit(monkeypatch, initialized, failed, calls):
    fake = FakeDist(initialized)
    monkeypatch.setattr(distributed, "dist", fake)
    monkeypatch.setattr(sys, "last_value", RuntimeError("boom") if failed else None, raising=False)
    distributed.leave_process_group()
    assert fake.calls == calls


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_slices_are_disjoint_cover_the_batch_and_differ_by_one_sample_at_most(world):
    for samples in range(world, 20):
        slices = [Ranks(r, world).bounds(samples) for r in range(world)]
        assert slices[0][0] == 0 and slices[-1][1] == samples
        assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
        sizes = [hi - lo for lo, hi in slices]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_batch_smaller_than_the_process_count_is_refused():
    with pytest.raises(ValueError, match="processes_per_run"):
        Ranks(0, 4).bounds(3)


def test_one_process_needs_no_process_group(tmp_path):
    assert not dist.is_initialized()
    metrics = train("even", tmp_path / "one", tmp_path / "ckpt", steps=4)
    assert metrics["processes"] == 1 and not dist.is_initialized()


# ----------------------------------------------------------------------------------------- workflow
def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
         "--directory", str(workdir), "--cores", "2", "--workflow-profile", "none", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.fixture(scope="module")
def planned_sweep(tmp_path_factory) -> Path:
    """The .test sweep with 2 processes per run (on CPU here), up to its first planned runs (the lr
    calibration's), nothing trained."""
    workdir = tmp_path_factory.mktemp("ddp_sweep")
    shutil.copytree(ROOT / ".test" / "config", workdir / "config")
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["training"] = {"processes_per_run": 2}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake(workdir, PLANNED)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


#: the first planning checkpoint's table: the runs a dry run can already show
PLANNED = "results/plan/lr_calibration.tsv"


def test_train_rule_launches_torchrun_with_a_gpu_per_process(planned_sweep):
    # device cuda changes only the jobs' request here (a dry run trains nothing); mtime keeps the plan
    cuda = 'training={"processes_per_run": 2, "device": "cuda"}'
    result = _snakemake(planned_sweep, "--dry-run", "--printshellcmds", "--rerun-triggers", "mtime", "--config", cuda)
    assert result.returncode == 0, result.stderr[-5000:]
    runs = pd.read_csv(planned_sweep / PLANNED, sep="\t")
    commands = [line for line in result.stdout.splitlines() if " train --config " in line]
    assert len(commands) == len(runs) == 9
    launcher = "Shell command: torchrun --standalone --nproc_per_node=2 -m flops_fit train "
    assert all(c.startswith(launcher) for c in commands), commands[0]
    assert result.stdout.count("threads: 2") == 9 and result.stdout.count("gpu=2") == 9


def test_train_rule_runs_under_torchrun_like_one_process(planned_sweep, tmp_path):
    """The real rule on CPU (2 gloo processes) and the one-process CLI give the same run."""
    workdir = tmp_path / "sweep"
    shutil.copytree(planned_sweep, workdir, ignore=shutil.ignore_patterns(".snakemake"))
    runs = pd.read_csv(workdir / PLANNED, sep="\t").sort_values("achieved_flops")
    run = runs[runs.batch_size % 2 == 1].iloc[0] if (runs.batch_size % 2).any() else runs.iloc[0]  # uneven if any
    result = _snakemake(workdir, "--printshellcmds", f"results/runs/{run.run_id}/metrics.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "torchrun --standalone --nproc_per_node=2" in result.stdout + result.stderr
    two = json.loads((workdir / "results/runs" / run.run_id / "metrics.json").read_text())
    log = (workdir / "logs/train" / f"{run.run_id}.log").read_text()
    assert log.count("wrote metrics") == 1 and "step 1/" in log  # one log, written by rank 0

    one_dir = tmp_path / "one"
    cli = [sys.executable, "-m", "flops_fit", "train", "--runs", PLANNED, "--run-id", run.run_id, "--out-dir", str(one_dir),
           "--checkpoint-dir", str(tmp_path / "ckpt"), "--threads", "1"]
    single = subprocess.run(cli, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-5000:]
    one = json.loads((one_dir / "metrics.json").read_text())
    assert (two["processes"], one["processes"]) == (2, 1)
    assert two["tokens"] == one["tokens"] == run.tokens
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=REL)
