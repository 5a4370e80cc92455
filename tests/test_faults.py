"""The faults of real clusters, injected into real training: an unreadable checkpoint, SIGTERM mid-run
(a time limit or a preemption), a diverging lr, and a run asked to retrain.

The engine tests train the tiny models of ``training_support`` in this process or in a child
process; the workflow tests run the real ``snakemake`` CLI on a copy of the session's `.test` sweep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from fitting_support import synthetic_sweep
from flops_fit.config import prepare_config
from flops_fit.fitting import fit_table
from flops_fit.pipeline import training_settings
from flops_fit.recommend import COLUMNS
from flops_fit.report_page import retried_runs, summary_page
from flops_fit.training import run_training
from flops_fit.training.checkpoint import CHECKPOINT_NAME
from flops_fit.training.stopping import EXIT_RETRY
from conftest import copy_sweep
from training_support import Regression, eval_batches, loss_fn, mlp, run_row, settings
from workflow_support import ROOT, processes, snakemake

STEPS = 150
CHILD = """
import logging, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from flops_fit.training import run_training
from flops_fit.training.stopping import EXIT_RETRY, Interrupted
from training_support import Regression, eval_batches, loss_fn, mlp, run_row, settings
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
model = mlp()
try:
    run_training(run_row(model, steps={steps}), model=model, train_data=Regression(delay_s=0.0003),
                 eval_data=eval_batches(), loss_fn=loss_fn, settings=settings(), out_dir=Path({out!r}),
                 checkpoint_dir=Path({ckpt!r}))
except Interrupted:
    sys.exit(EXIT_RETRY)
"""


def _child(out: Path, ckpt: Path) -> subprocess.Popen:
    """A training process with the default checkpoint settings (every 5 minutes: never, in this short run)."""
    code = CHILD.format(tests=str(Path(__file__).parent), steps=STEPS, out=str(out), ckpt=str(ckpt))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)


def _uninterrupted(tmp_path: Path, **row: object) -> dict:
    model = mlp()
    return run_training(
        run_row(model, **row), model=model, train_data=Regression(), eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(), out_dir=tmp_path / "whole", checkpoint_dir=tmp_path / "whole_ckpt",
    )


# ----------------------------------------------------------------------------------------- engine


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_signal_checkpoints_the_current_step_and_the_rerun_loses_nothing(tmp_path, stop):
    """SIGTERM (time limit, preemption) or SIGUSR1 (--signal=USR1@N): no periodic checkpoint is due, yet
    the rerun resumes from the very step the signal interrupted and ends as an uninterrupted run."""
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    proc = _child(out, ckpt)
    lines = []
    for line in proc.stderr:  # wait until it trains, then signal it mid-run
        lines.append(line)
        if line.startswith("step "):
            time.sleep(0.1)
            proc.send_signal(stop)
            break
    lines += proc.stderr.read().splitlines(keepends=True)
    log = "".join(lines)
    assert proc.wait(timeout=120) == EXIT_RETRY, log
    stopped = re.search(r"stopped after step (\d+)/", log)
    assert stopped, f"no 'stopped after step' line:\n{log}"
    assert f"received {stop.name}" in log
    step = int(stopped.group(1))
    assert 1 < step < STEPS, "the signal did not arrive mid-run; make the run slower"
    assert (ckpt / CHECKPOINT_NAME).exists() and not (out / "metrics.json").exists()

    proc = _child(out, ckpt)
    _, log = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    assert f"resumed from step {step} " in log
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["resumed_from_step"] == step  # lost work: zero steps
    whole = _uninterrupted(tmp_path, steps=STEPS)
    assert (out / "curve.tsv").read_text() == (tmp_path / "whole" / "curve.tsv").read_text()
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], abs=1e-6)


def _checkpointed_run(tmp_path: Path) -> Path:
    """A checkpoint directory holding a real checkpoint of the 40-step run, written at step 20."""
    model = mlp()
    ckpt = tmp_path / "ckpt"
    run_training(
        run_row(model), model=model, train_data=Regression(), eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(checkpoint={"every_steps": 20, "keep": True}), out_dir=tmp_path / "first", checkpoint_dir=ckpt,
    )
    return ckpt


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        ("truncate", "unreadable"),  # a full disk, a half-synced shared filesystem
        ("garbage", "unreadable"),
        ("old_format", "mismatched"),  # written by an older flops-fit
        ("other_plan", "mismatched"),  # the run was re-planned
    ],
)
def test_an_unusable_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, caplog, damage, kind):
    ckpt = _checkpointed_run(tmp_path)
    path = ckpt / CHECKPOINT_NAME
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\0" * 100)
    else:
        state = torch.load(path, weights_only=True)
        if damage == "old_format":
            del state["format"]
        else:
            state["fingerprint"]["steps"] = 80
        torch.save(state, path)
    model = mlp()
    with caplog.at_level("INFO", logger="flops_fit.training"):
        metrics = run_training(
            run_row(model), model=model, train_data=Regression(), eval_data=eval_batches(), loss_fn=loss_fn,
            settings=settings(), out_dir=tmp_path / "out", checkpoint_dir=ckpt,
        )
    assert metrics["status"] == "ok" and metrics["resumed_from_step"] is None and metrics["steps"] == 40
    assert (ckpt / f"{CHECKPOINT_NAME}.{kind}").exists() and not path.exists()
    assert f"is {kind}" in caplog.text and f"{CHECKPOINT_NAME}.{kind}; the run starts over" in caplog.text
    _uninterrupted(tmp_path)
    assert (tmp_path / "out" / "curve.tsv").read_text() == (tmp_path / "whole" / "curve.tsv").read_text()


def test_a_diverged_run_is_retried_from_scratch_at_a_lower_lr(tmp_path):
    """lr 10 diverges on this task and lr 5 does not: the retry counts, and it is a fresh run at lr 5."""
    model = mlp()
    metrics = run_training(
        run_row(model, lr=10.0), model=model, train_data=Regression(), eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(), out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt",
    )
    assert metrics["status"] == "ok" and metrics["lr"] == 5.0 and metrics["planned_lr"] == 10.0
    first, second = metrics["attempts"]
    assert first["lr"] == 10.0 and first["status"] == "diverged" and "stayed above" in first["reason"]
    assert second == {"lr": 5.0, "status": "ok", "reason": None}
    fresh = _uninterrupted(tmp_path, lr=5.0)  # from the same initial weights and data order
    assert metrics["eval_loss"] == fresh["eval_loss"]
    assert (tmp_path / "out" / "curve.tsv").read_text() == (tmp_path / "whole" / "curve.tsv").read_text()


def test_retries_run_out_and_calibration_runs_are_never_retried(tmp_path):
    model = mlp()
    exhausted = run_training(
        run_row(model, lr=1000.0, run_id="hopeless"), model=model, train_data=Regression(), eval_data=eval_batches(),
        loss_fn=loss_fn, settings=settings(divergence={"retries": 2}), out_dir=tmp_path / "runs" / "hopeless",
        checkpoint_dir=tmp_path / "ca",
    )
    assert exhausted["status"] == "diverged" and exhausted["eval_loss"] is None
    assert [a["lr"] for a in exhausted["attempts"]] == [1000.0, 500.0, 250.0] and exhausted["lr"] == 250.0
    assert {a["status"] for a in exhausted["attempts"]} == {"diverged"}
    model = mlp()
    config = prepare_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    calibration_settings = training_settings(config, {"role": "calibration"})
    assert training_settings(config, {"role": "sweep"})["divergence"]["retries"] == 1
    calibration = run_training(
        run_row(model, lr=10.0), model=model, train_data=Regression(), eval_data=eval_batches(),
        loss_fn=loss_fn, settings=settings(divergence={"retries": calibration_settings["divergence"]["retries"]}),
        out_dir=tmp_path / "b", checkpoint_dir=tmp_path / "cb",
    )
    assert calibration["status"] == "diverged" and len(calibration["attempts"]) == 1


def test_the_summary_lists_retried_and_still_diverged_runs(tmp_path):
    runs_dir = tmp_path / "runs"
    for run_id, lr in [("fine", 1.0), ("rescued", 10.0), ("hopeless", 1000.0)]:
        model = mlp()
        run_training(
            run_row(model, lr=lr, run_id=run_id), model=model, train_data=Regression(), eval_data=eval_batches(),
            loss_fn=loss_fn, settings=settings(), out_dir=runs_dir / run_id, checkpoint_dir=tmp_path / "ckpt",
        )
    runs = pd.DataFrame({"run_id": ["fine", "rescued", "hopeless", "not_trained_yet"]})
    table = retried_runs(runs, runs_dir)
    assert table["run_id"].tolist() == ["rescued", "hopeless"]
    assert table["status"].tolist() == ["retried", "diverged"]
    assert table["lrs"].iloc[0] == "10 (diverged) → 5 (ok)"
    assert "non-finite" in table["reason"].iloc[1]
    fit = fit_table(synthetic_sweep(seed=1, budgets=(1e18, 1e19, 1e20), sizes=5), bootstrap=0)
    page = summary_page(fit, pd.DataFrame(columns=COLUMNS), runs.assign(status="ok"), retried=table)
    assert "still diverged (2)" in page and "10 (diverged) → 5 (ok)" in page


# --------------------------------------------------------------------------------------- workflow


def _runs(sweep: Path) -> pd.DataFrame:
    return pd.read_csv(sweep / "results" / "plan" / "runs.tsv", sep="\t")


def _trained(output: str) -> list[str]:
    """run_ids of the train jobs Snakemake started (from its job announcements)."""
    return re.findall(r"rule train:\n(?:\s+\w+: .*\n)*?\s+wildcards: run_id=(\S+)", output)


def _snapshot(sweep: Path) -> dict[str, object]:
    """What a retrain must leave alone: every wave's placement and every run's metrics file."""
    plan = sweep / "results" / "plan"
    return {
        **{p.name: p.read_text() for p in sorted((plan / "waves").glob("*.tsv"))},
        "calibration": (plan / "lr_calibration.json").read_text(),
        **{p.parent.name: p.stat().st_mtime_ns for p in (sweep / "results" / "runs").glob("*/metrics.json")},
    }


def _wave0_run(sweep: Path) -> str:
    runs = _runs(sweep)
    return str(runs[(runs["role"] == "sweep") & (runs["wave"] == 0)]["run_id"].iloc[1])


def test_retraining_one_run_trains_only_it_and_redoes_the_fit(test_sweep, tmp_path):
    """The documented retrain: --forcerun its metrics.json. Later waves are re-placed from the new result
    (here the same result, on CPU), so the placement, every other run and the lr law stay as they were."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    run_id = _wave0_run(sweep)
    before, metrics = _snapshot(sweep), json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    fit_before = (sweep / "results" / "fit" / "fit.json").stat().st_mtime_ns
    result = snakemake(sweep, "--forcerun", f"results/runs/{run_id}/metrics.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _trained(result.stderr) == [run_id]
    after = _snapshot(sweep)
    assert after.pop(run_id) > before.pop(run_id)
    assert after == before, "retraining one run changed the placement or touched other runs"
    assert (sweep / "results" / "fit" / "fit.json").stat().st_mtime_ns > fit_before
    again = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    assert again["eval_loss"] == metrics["eval_loss"] and again["status"] == "ok"
    assert "Nothing to be done" in snakemake(sweep, "--dry-run").stdout


def test_a_truncated_checkpoint_is_set_aside_in_the_workflow(test_sweep, tmp_path):
    """A checkpoint cut short by a full disk: the job neither fails nor waits for retries, the run starts over."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    run_id = _wave0_run(sweep)
    metrics = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    ckpt = sweep / "results" / "checkpoints" / run_id
    ckpt.mkdir(parents=True)
    torch.save({"model": mlp().state_dict(), "format": 2}, ckpt / CHECKPOINT_NAME)
    data = (ckpt / CHECKPOINT_NAME).read_bytes()
    (ckpt / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    result = snakemake(sweep, "--forcerun", f"results/runs/{run_id}/metrics.json")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (sweep / "logs" / "train" / f"{run_id}.log").read_text()
    assert "is unreadable" in log and "the run starts over" in log
    assert (ckpt / f"{CHECKPOINT_NAME}.unreadable").exists() and not (ckpt / CHECKPOINT_NAME).exists()
    again = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    assert again["eval_loss"] == metrics["eval_loss"] and again["resumed_from_step"] is None


def _training_process(sweep: Path, run_id: str, deadline: float) -> int:
    """pid of the ``flops_fit train`` process of ``run_id`` working in ``sweep``, once it has trained a step."""
    log = sweep / "logs" / "train" / f"{run_id}.log"
    while time.monotonic() < deadline:
        if log.exists() and re.search(r"^\S+ \S+ INFO step \d+/", log.read_text(), re.M):
            for pid, cmdline, cwd in processes():
                if b"train" in cmdline and run_id.encode() in cmdline and cwd == sweep.resolve():
                    return pid
        time.sleep(0.002)
    raise AssertionError(f"run {run_id} did not start training in time")


def test_sigterm_mid_run_is_retried_and_resumes_where_it_stopped(test_sweep, tmp_path):
    """A time limit or preemption in the workflow: SIGTERM to the training process mid-run. Its job fails
    with the retry status, Snakemake's --retries reruns it, and the rerun loses no step."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    runs = _runs(sweep)
    run_id = str(runs.loc[runs["params"].idxmax(), "run_id"])  # the slowest run
    metrics = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
           "--directory", str(sweep), "--cores", "2", "--workflow-profile", "none", "--retries", "1",
           "--forcerun", f"results/runs/{run_id}/metrics.json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        os.kill(_training_process(sweep, run_id, time.monotonic() + 120), signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    stopped = re.search(r"stopped after step (\d+)/(\d+)", err)
    assert stopped, f"the training process did not stop on SIGTERM:\n{err[-3000:]}"
    step = int(stopped.group(1))
    assert f"exiting with status {EXIT_RETRY}" in err
    assert f"resumed from step {step} " in (sweep / "logs" / "train" / f"{run_id}.log").read_text()
    again = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
    assert again["resumed_from_step"] == step  # nothing lost: the rerun starts at the interrupted step
    assert again["eval_loss"] == pytest.approx(metrics["eval_loss"], abs=1e-6)
    assert not (sweep / "results" / "checkpoints" / run_id).exists()


@pytest.mark.slow
def test_a_sweep_whose_lr_diverges_is_rescued_by_retries(tmp_path):
    """Every run forced to diverge (sweep.lr 300, no calibration to correct it): each is retried at
    lr x 1e-4 from scratch, and the sweep is fitted from all of them, none lost; the summary lists them."""
    config = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    config["sweep"].update(lr=300.0, lr_calibration={"enabled": False})
    config["training"] = {"divergence": {"lr_factor": 1e-4}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _runs(tmp_path)
    for run_id, lr in zip(runs["run_id"], runs["lr"]):
        metrics = json.loads((tmp_path / "results" / "runs" / run_id / "metrics.json").read_text())
        assert [a["status"] for a in metrics["attempts"]] == ["diverged", "ok"], metrics["attempts"]
        assert metrics["planned_lr"] == pytest.approx(lr) and metrics["lr"] == pytest.approx(lr * 1e-4)
    fit = json.loads((tmp_path / "results" / "fit" / "fit.json").read_text())
    assert fit["n_runs"] == len(runs)
    page = (tmp_path / "results" / "report" / "summary.html").read_text()
    assert f"still diverged ({len(runs)})" in page and "(diverged) → " in page
