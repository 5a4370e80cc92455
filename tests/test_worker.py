"""The training worker (flops_fit/worker): real fork server, real `flops-fit train` jobs on the `.test` sweep.

The session sweep itself already trains every run through the worker (``worker.enabled`` defaults to
true); these tests check what a job must still see: the same result as a process of its own, its exit
status, signals, a killed job's run checkpointing, a worker per code version, and the fallback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from conftest import copy_sweep
from flops_fit.worker import address
from flops_fit.worker.client import WORKER_ENV, requested_idle_seconds
from flops_fit.training.stopping import EXIT_RETRY


def _train(sweep: Path, run_id: str, out: str, env: dict, threads: tuple[str, ...] = ("--threads", "1"),
           **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flops_fit", "train", "--config", "results/validated.json",
           "--runs", "results/plan/runs.tsv", "--run-id", run_id, "--out-dir", f"{out}/{run_id}",
           "--checkpoint-dir", f"{out}/checkpoints/{run_id}", *threads, "--log-file", f"{out}/{run_id}.log"]
    return subprocess.Popen(cmd, cwd=sweep, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def _env(idle: str = "20", **extra: str) -> dict:
    return {**os.environ, WORKER_ENV: idle, **extra}


def _worker_log(sweep: Path, env: dict) -> Path:
    """The log of the worker that jobs started in ``sweep`` with ``env`` use."""
    code = ("import os; from flops_fit.worker.address import worker_socket; "
            "print(worker_socket().with_suffix('.log'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=sweep, env=env, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _runs(sweep: Path) -> pd.DataFrame:
    return pd.read_csv(sweep / "results" / "plan" / "runs.tsv", sep="\t")


def _slowest_run(sweep: Path) -> str:
    runs = _runs(sweep)
    return str(runs.loc[runs["params"].idxmax(), "run_id"])


def _training_job(sweep: Path, run_id: str, env: dict) -> tuple[subprocess.Popen, Path]:
    """A job training ``run_id`` into ``again/``, returned once its run has logged a step; its run log."""
    job = _train(sweep, run_id, "again", env)
    run_log = sweep / "again" / f"{run_id}.log"
    deadline = time.monotonic() + 120
    while not (run_log.exists() and re.search(r"INFO step \d+/", run_log.read_text())):
        assert time.monotonic() < deadline and job.poll() is None, job.communicate()[1][-3000:]
        time.sleep(0.01)
    return job, run_log


def test_which_worker_the_environment_asks_for(monkeypatch):
    monkeypatch.delenv(WORKER_ENV, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert requested_idle_seconds() is None
    monkeypatch.setenv(WORKER_ENV, "120")
    assert requested_idle_seconds() == 120.0
    monkeypatch.setenv(WORKER_ENV, "0")
    assert requested_idle_seconds() is None
    monkeypatch.setenv(WORKER_ENV, "soon")
    assert requested_idle_seconds() is None
    monkeypatch.setenv(WORKER_ENV, "120")
    monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun rank sets up its own process group
    assert requested_idle_seconds() is None


def test_edited_code_and_another_directory_get_another_worker(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "mod.py"
    module.write_text("x = 1\n")
    before = address.source_fingerprint(package)
    module.write_text("x = 22\n")
    assert address.source_fingerprint(package) != before
    assert address.worker_key(str(tmp_path / "a")) != address.worker_key(str(tmp_path / "b"))
    assert address.worker_key(str(tmp_path / "a")) == address.worker_key(str(tmp_path / "a"))


def test_a_run_through_the_worker_equals_the_workflows_and_reuses_it(test_sweep, tmp_path):
    """Two runs through one worker: each result equals the session sweep's (trained in the workflow),
    both children were forked from the same worker, and the jobs' output reached their own streams."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    env = _env()
    run_ids = sorted(_runs(sweep)["run_id"])[:2]
    for run_id in run_ids:
        job = _train(sweep, run_id, "again", env)
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
        assert f"wrote metrics for {run_id}" in err  # the child's log reached the job's stderr
        again = json.loads((sweep / "again" / run_id / "metrics.json").read_text())
        first = json.loads((sweep / "results" / "runs" / run_id / "metrics.json").read_text())
        assert again["eval_loss"] == first["eval_loss"] and again["steps"] == first["steps"]
    log = _worker_log(sweep, env).read_text()
    assert all(re.search(rf"pid \d+: flops-fit train .*--run-id {run_id} ", log) for run_id in run_ids), log
    assert len(re.findall(r"INFO ready on", log)) == 1  # one worker served both


def test_a_child_starts_as_a_new_process_would(test_sweep, tmp_path):
    """Without --threads a run gets torch's default threads, as in a process of its own (the worker
    itself keeps one thread so that it forks no OpenMP pool)."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    env = _env()
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    run_id = sorted(_runs(sweep)["run_id"])[0]
    job = _train(sweep, run_id, "again", env, threads=())
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    metrics = json.loads((sweep / "again" / run_id / "metrics.json").read_text())
    assert metrics["device"].startswith(f"cpu ({default} threads)"), metrics["device"]


def test_a_killed_job_stops_its_run_with_a_checkpoint_and_the_rerun_resumes(test_sweep, tmp_path):
    """SIGKILL to the job (it cannot relay anything): the worker sees it disconnect and stops the run with
    SIGTERM, which writes a checkpoint; the next job resumes from it. SIGTERM to a job is relayed (the
    workflow's retry test in test_faults.py covers it)."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    env = _env()
    run_id = _slowest_run(sweep)
    job, run_log = _training_job(sweep, run_id, env)
    deadline = time.monotonic() + 120
    job.kill()
    job.communicate()
    worker_log = _worker_log(sweep, env)
    child = re.findall(rf"pid (\d+): flops-fit train .*--run-id {run_id} ", worker_log.read_text())[-1]
    while f"pid {child}: exit" not in worker_log.read_text():
        assert time.monotonic() < deadline, worker_log.read_text()
        time.sleep(0.05)
    assert f"pid {child}: exit {EXIT_RETRY}" in worker_log.read_text()
    stopped = re.search(r"stopped after step (\d+)/", run_log.read_text())
    assert stopped, run_log.read_text()
    rerun = _train(sweep, run_id, "again", env)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    metrics = json.loads((sweep / "again" / run_id / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == int(stopped.group(1))


def test_a_stop_signal_to_every_process_of_the_job_stops_the_run_once_with_its_retry_status(test_sweep, tmp_path):
    """As under SLURM (``scancel --signal=TERM``, the time limit's ``--signal``): SIGTERM reaches the job,
    the worker and the run, and it keeps coming (the job relays it, the stopping worker sends it, a
    job step's other processes pass it on). The run stops once, and its job still ends with the retry
    status, not 143 from a repeat landing after the run restored its handlers."""
    import signal

    from workflow_support import processes

    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    env = _env()
    run_id = _slowest_run(sweep)
    job, _ = _training_job(sweep, run_id, env)
    worker_log = _worker_log(sweep, env)
    child = int(re.findall(rf"pid (\d+): flops-fit train .*--run-id {run_id} ", worker_log.read_text())[-1])
    socket_arg = str(worker_log.with_suffix(".sock")).encode()
    server = next(pid for pid, cmd, _ in processes() if b"worker" in cmd and socket_arg in cmd)
    for pid in (job.pid, server, child):  # SLURM signals each process of the step once
        os.kill(pid, signal.SIGTERM)
    while job.poll() is None:  # the job's relay and the stopping worker's, and more, until the run is gone
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    _, err = job.communicate()
    assert job.returncode == EXIT_RETRY, err[-3000:]
    assert f"exiting with status {EXIT_RETRY}" in err and err.count("received SIGTERM") == 1, err[-3000:]
    rerun = _train(sweep, run_id, "again", env)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert json.loads((sweep / "again" / run_id / "metrics.json").read_text())["resumed_from_step"] > 0


def test_without_a_usable_worker_the_job_trains_in_its_own_process(test_sweep, tmp_path):
    """A socket folder others could write to is refused: the job says so and trains by itself."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    runtime = tmp_path / "runtime"
    (runtime / f"flops-fit-{os.getuid()}").mkdir(parents=True, mode=0o777)
    os.chmod(runtime / f"flops-fit-{os.getuid()}", 0o777)
    run_id = sorted(_runs(sweep)["run_id"])[0]
    job = _train(sweep, run_id, "again", _env(XDG_RUNTIME_DIR=str(runtime)))
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    assert "running flops-fit train in this process" in err and "must belong to you and be private" in err
    assert (sweep / "again" / run_id / "metrics.json").exists()


def test_an_idle_worker_exits_and_the_next_job_starts_a_new_one(test_sweep, tmp_path):
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    env = _env(idle="1")
    run_id = sorted(_runs(sweep)["run_id"])[0]
    for attempt in range(2):
        job = _train(sweep, run_id, f"again{attempt}", env)
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
        socket_path = _worker_log(sweep, env).with_suffix(".sock")
        deadline = time.monotonic() + 60
        while socket_path.exists():
            assert time.monotonic() < deadline, "the idle worker did not exit"
            time.sleep(0.1)
    assert len(re.findall(r"idle for 1 s: exiting", _worker_log(sweep, env).read_text())) == 2


def test_the_job_ends_with_the_runs_exit_status(test_sweep, tmp_path):
    """A run that fails (here: a run id the plan lacks) fails its job, with the child's error message."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    job = _train(sweep, "no_such_run", "again", _env())
    _, err = job.communicate(timeout=300)
    assert job.returncode != 0 and "no_such_run" in err


def test_a_rule_script_runs_in_a_child_of_the_worker_as_its_job(tmp_path):
    """`flops-fit script` (every non-train rule's command) runs the script in a forked child of the warm
    worker: torch is already imported when the script starts, the worker logged the child's pid, and the
    script sees the job's working directory, arguments and environment."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, os, sys\n"
        "json.dump({'pid': os.getpid(), 'cwd': os.getcwd(), 'argv': sys.argv, 'torch': 'torch' in sys.modules,\n"
        "           'marker': os.environ.get('JOB_MARKER'), 'main': __name__}, open('probe.json', 'w'))\n"
    )
    env = _env(JOB_MARKER="this job")
    job = subprocess.run([sys.executable, "-m", "flops_fit", "script", str(script), "--an", "option"], cwd=job_dir,
                         env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    probe = json.loads((job_dir / "probe.json").read_text())
    assert probe["torch"], "the script started in a new process, not in the warm worker"
    assert probe["cwd"] == str(job_dir) and probe["marker"] == "this job" and probe["main"] == "__main__"
    assert probe["argv"] == [str(script), "--an", "option"]
    log = _worker_log(job_dir, env).read_text()
    assert re.search(rf"pid {probe['pid']}: flops-fit script {re.escape(str(script))} --an option", log), log


def test_a_failing_rule_script_fails_its_job_with_its_traceback_in_its_log(tmp_path):
    """An exception in a rule script: the job exits 1 and the traceback is in the rule's log file (the
    script pointed the flops_fit logger there), not only on stderr."""
    script = tmp_path / "broken.py"
    script.write_text(
        "from flops_fit.script_cli import rule_args\n"
        "args, log = rule_args(__doc__)\n"
        "raise RuntimeError('the script broke')\n"
    )
    job = subprocess.run([sys.executable, "-m", "flops_fit", "script", str(script), "--log-file", "rule.log"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert job.returncode == 1, job.stderr[-3000:]
    rule_log = (tmp_path / "rule.log").read_text()
    assert "broken.py failed" in rule_log and "RuntimeError: the script broke" in rule_log, rule_log


def test_a_worker_that_cannot_import_leaves_no_socket_and_the_job_runs_by_itself(test_sweep, tmp_path):
    """A worker whose imports fail (here: a broken matplotlib, which only the rules' scripts need) exits
    without leaving its socket behind, and the job that started it runs in its own process."""
    sweep = copy_sweep(test_sweep, tmp_path / "sweep")
    broken = tmp_path / "broken" / "matplotlib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('a broken matplotlib')\n")
    env = _env(PYTHONPATH=str(broken.parent))
    run_id = sorted(_runs(sweep)["run_id"])[0]
    job = _train(sweep, run_id, "again", env)
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    assert "running flops-fit train in this process" in err
    worker_log = _worker_log(sweep, env)
    assert "a broken matplotlib" in worker_log.read_text()
    assert not worker_log.with_suffix(".sock").exists()
