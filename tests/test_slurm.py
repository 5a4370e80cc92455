"""SLURM execution through ``profiles/slurm``, tested on a real single-node cluster.

The ``slurm``-marked tests bring the cluster up with ``.ci/slurm/up.sh`` (munge, MariaDB, slurmdbd,
slurmctld, slurmd, two fake GPUs; idempotent, seconds when it is already up) and drive Snakemake
with the official ``snakemake-executor-plugin-slurm``: jobs really go through ``sbatch`` and their
states are read back from ``sacct``. They skip only where they cannot run at all (not root, or
neither SLURM nor apt-get to install it); in CI (root, Debian) they must run: ``pytest -m slurm``.
The unmarked tests check the profiles without a cluster.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
WORKFLOW_PROFILE = REPO / "workflow" / "profiles" / "default"
#: CI-only overrides of the shipped profile: poll sooner and do not wait for a network filesystem
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "5", "--latency-wait", "5"]
SNAKEMAKE_TIMEOUT_S = 540
#: keys a workflow profile must not set: they would replace the cluster profile's wholesale
RESOURCE_KEYS = {"default-resources", "set-resources", "set-threads", "resources"}


def _profile(path: Path) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text()) or {}


def _require_plugin() -> None:
    """The plugin is a pinned requirement: its absence is a broken environment, not a reason to skip."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is missing: pip install -r requirements.txt")


def _snakemake(workdir: Path, *args: str, snakefile: Path | None = None, timeout_s: int) -> subprocess.CompletedProcess:
    """Snakemake as users run it (the CLI reads profiles; the Python API does not), bounded in time."""
    cmd = [
        "timeout", "-k", "10", str(timeout_s),
        sys.executable, "-m", "snakemake",
        "--snakefile", str(snakefile or REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# ------------------------------------------------------------------------------- without a cluster


def test_default_workflow_profile_leaves_cluster_settings_to_the_slurm_profile() -> None:
    """A workflow profile overrides a ``--profile`` per top-level key (Snakemake replaces, not merges)."""
    slurm = _profile(SLURM_PROFILE)
    default = _profile(WORKFLOW_PROFILE) if (WORKFLOW_PROFILE / "config.yaml").exists() else {}
    assert not RESOURCE_KEYS & default.keys(), (
        f"{WORKFLOW_PROFILE}/config.yaml sets {sorted(RESOURCE_KEYS & default.keys())}: that would replace "
        "profiles/slurm's resources on a cluster; move them into profiles/slurm or a local-only profile"
    )
    clashes = {k: (default[k], slurm[k]) for k in default.keys() & slurm.keys() if default[k] != slurm[k]}
    assert not clashes, f"workflow profile overrides profiles/slurm (workflow, slurm): {clashes}"


def test_slurm_profile_parses_and_its_resources_reach_the_jobs(tmp_path: Path) -> None:
    """Every key is an option of Snakemake + the plugin, and no workflow profile overrides the resources."""
    _require_plugin()
    slurm = _profile(SLURM_PROFILE)
    assert slurm["executor"] == "slurm" and slurm["retries"] >= 1
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    proc = _snakemake(tmp_path, "--profile", str(SLURM_PROFILE), "--dry-run", timeout_s=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    expected = slurm["default-resources"]
    validate = proc.stdout[proc.stdout.index("rule validate:") :]
    resources = validate[validate.index("resources:") :].splitlines()[0]
    for key in ("mem_mb", "runtime"):
        assert f"{key}={expected[key]}" in resources, f"profiles/slurm's {key} lost: {resources}"


# ------------------------------------------------------------------------------- on a real cluster


def _cluster_is_up() -> bool:
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=10).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running local cluster with 2 fake GPUs; stopped again afterwards if this fixture started it."""
    if os.geteuid() != 0:
        pytest.skip("SLURM tests need root: .ci/slurm/up.sh starts munge, MariaDB and the SLURM daemons")
    if not (shutil.which("slurmd") or shutil.which("apt-get")):
        pytest.skip("SLURM tests need SLURM installed, or apt-get to install it (Debian/Ubuntu)")
    _require_plugin()
    was_up = _cluster_is_up()
    env = {**os.environ, "FAKE_GPUS": "2"}
    up = subprocess.run(
        ["timeout", "-k", "10", "900", str(REPO / ".ci" / "slurm" / "up.sh")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert up.returncode == 0, f".ci/slurm/up.sh failed (exit {up.returncode}):\n{up.stdout[-4000:]}"
    yield
    if not was_up:
        subprocess.run(["timeout", "-k", "5", "120", str(REPO / ".ci" / "slurm" / "down.sh")], check=False)


def _submitted_jobs(log: str) -> pd.DataFrame:
    """sacct rows (one per job allocation) of the jobs that one Snakemake run submitted.

    The plugin names every job of a run after the run's UUID and puts the rule (and wildcards) into
    the job comment, e.g. ``rule_train_wildcards_C1e10_d_model16``.
    """
    names = {line.split("--job-name ", 1)[1].split()[0] for line in log.splitlines() if "sbatch call:" in line}
    assert len(names) == 1, f"expected the jobs of one Snakemake run, found job names {names}"
    since = (datetime.datetime.now() - datetime.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "--name", names.pop(),
         "-o", "JobID,State,Comment,ReqTRES"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=["job_id", "state", "comment", "req_tres"])
    return table.astype({"job_id": int}).sort_values("job_id", ignore_index=True)


def _test_config(workdir: Path, **training: object) -> Path:
    """The .test sweep's config in a fresh working directory, with ``training`` settings overridden."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["training"] = {**config.get("training", {}), **training}
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def _metrics(workdir: Path, run_id: str) -> dict:
    return json.loads((workdir / f"results/runs/{run_id}/metrics.json").read_text())


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .test sweep run locally: the reference the SLURM runs must reproduce."""
    workdir = _test_config(tmp_path_factory.mktemp("local"))
    proc = _snakemake(workdir, "--cores", "2", timeout_s=SNAKEMAKE_TIMEOUT_S)
    assert proc.returncode == 0, f"local run failed:\n{proc.stdout[-4000:]}"
    return workdir


@pytest.mark.slurm
def test_test_sweep_through_slurm_equals_a_local_run(slurm_cluster, local_sweep: Path, tmp_path: Path) -> None:
    """The .test sweep via sbatch gives the local run's plan and losses; GPU requests reach SLURM."""
    cluster = _test_config(tmp_path)
    proc = _snakemake(
        cluster, "--profile", str(SLURM_PROFILE), *FAST_POLLING, "--verbose",
        # what a GPU cluster's train jobs ask for; the fake GPUs are /dev/null, training stays on CPU
        "--set-resources", "train:gpu=1",
        timeout_s=SNAKEMAKE_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, f"SLURM run failed:\n{proc.stdout[-6000:]}"

    runs = pd.read_csv(local_sweep / "results/plan/runs.tsv", sep="\t")
    pd.testing.assert_frame_equal(pd.read_csv(cluster / "results/plan/runs.tsv", sep="\t"), runs)
    jobs = _submitted_jobs(proc.stdout)
    calibration = pd.read_csv(local_sweep / "results/plan/lr_calibration.tsv", sep="\t")
    expected = {f"rule_train_wildcards_{run_id}" for run_id in [*runs["run_id"], *calibration["run_id"]]}
    assert set(jobs["comment"]) == expected, f"only train jobs, one per run, go to SLURM:\n{jobs}"
    assert (jobs["state"] == "COMPLETED").all(), jobs
    assert jobs["req_tres"].str.contains("gres/gpu=1").all(), f"train:gpu=1 must request one GPU:\n{jobs}"
    assert "--gpus=1" in proc.stdout

    for run_id in runs["run_id"]:
        here, there = _metrics(local_sweep, run_id), _metrics(cluster, run_id)
        assert there["status"] == here["status"] == "ok", run_id
        assert there["eval_loss"] == pytest.approx(here["eval_loss"], rel=1e-5), run_id
        assert there["tokens"] == here["tokens"], run_id
    fit_local, fit_cluster = (pd.read_csv(d / "results/fit/runs_results.tsv", sep="\t") for d in (local_sweep, cluster))
    pd.testing.assert_frame_equal(fit_cluster, fit_local, rtol=1e-5)


@pytest.mark.slurm
def test_two_process_run_through_slurm_matches_one_process(slurm_cluster, local_sweep: Path, tmp_path: Path) -> None:
    """processes_per_run=2: one sbatch job with 2 CPUs and 2 GPUs runs torchrun; same loss as 1 process."""
    # a calibration run: the first planned runs, so the target needs no other training first
    run_id = pd.read_csv(local_sweep / "results/plan/lr_calibration.tsv", sep="\t")["run_id"].iloc[0]
    workdir = _test_config(tmp_path, processes_per_run=2, device="cpu")
    proc = _snakemake(
        workdir, f"results/runs/{run_id}/metrics.json",
        "--profile", str(SLURM_PROFILE), *FAST_POLLING, "--verbose",
        # a CUDA run would ask for gpu=2 itself; on CPU, request the two fake GPUs explicitly
        "--set-resources", "train:gpu=2",
        timeout_s=SNAKEMAKE_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, f"SLURM run failed:\n{proc.stdout[-6000:]}"
    jobs = _submitted_jobs(proc.stdout)
    assert list(jobs["comment"]) == [f"rule_train_wildcards_{run_id}"] and list(jobs["state"]) == ["COMPLETED"], jobs
    assert "gres/gpu=2" in jobs["req_tres"].iloc[0] and "cpu=2" in jobs["req_tres"].iloc[0], jobs
    submit = next(line for line in proc.stdout.splitlines() if "sbatch call:" in line)
    assert "--gpus=2" in submit and "--cpus-per-task=2" in submit, submit
    assert "torchrun --standalone --nproc_per_node=2" in proc.stdout

    here, there = _metrics(local_sweep, run_id), _metrics(workdir, run_id)
    assert there["status"] == "ok" and there["tokens"] == here["tokens"] and there["steps"] == here["steps"]
    assert there["eval_loss"] == pytest.approx(here["eval_loss"], rel=1e-3), "2 processes must train like 1"


#: rules whose sbatch flags and retries are checked without the cost of training
PROBE_SNAKEFILE = """
rule all:
    input: "out/gpu.txt", "out/gpus.txt", "out/gpu_model.txt", "out/gres.txt", "out/flaky.txt", "out/broken.txt",
           expand("out/tiny_{i}.txt", i=range(4))

rule gpu:
    output: "out/gpu.txt"
    resources: gpu=1
    shell: "echo $CUDA_VISIBLE_DEVICES > {output}"

rule gpus:  # what a 2-process (torchrun) run asks for on CUDA
    output: "out/gpus.txt"
    resources: gpu=2
    shell: "echo $CUDA_VISIBLE_DEVICES > {output}"

rule gpu_model:
    output: "out/gpu_model.txt"
    resources: gpu=1, gpu_model="a100"
    shell: "echo $CUDA_VISIBLE_DEVICES > {output}"

rule gres:
    output: "out/gres.txt"
    resources: gres="gpu:a100:1"
    shell: "echo $CUDA_VISIBLE_DEVICES > {output}"

rule flaky:  # fails its first attempt only, like a node failure
    output: "out/flaky.txt"
    shell: "if [ -e flaky.attempted ]; then echo ok > {output}; else touch flaky.attempted; exit 3; fi"

rule broken:
    output: "out/broken.txt"
    shell: "exit 4"

rule tiny:
    output: "out/tiny_{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


@pytest.mark.slurm
def test_gpu_flags_grouping_failures_and_retries(slurm_cluster, tmp_path: Path) -> None:
    """GPU resources become --gpus/--gres on fake GRES; failed jobs are reported and retried."""
    (tmp_path / "Snakefile").write_text(PROBE_SNAKEFILE)
    proc = _snakemake(
        tmp_path, "--profile", str(SLURM_PROFILE), *FAST_POLLING, "--verbose",
        # batch the 4 tiny jobs into one submission; the memory limit makes them run one after another
        "--groups", "tiny=tinies", "--group-components", "tinies=4", "--resources", "mem_mb=4000",
        snakefile=tmp_path / "Snakefile", timeout_s=SNAKEMAKE_TIMEOUT_S,
    )  # fmt: skip
    log = proc.stdout
    assert proc.returncode == 1, f"the always-failing rule must fail the run:\n{log[-4000:]}"
    jobs = _submitted_jobs(log)
    by_rule = {c: g for c, g in jobs.groupby("comment")}

    for rule, flag in [("gpu", "--gpus=1"), ("gpu_model", "--gpus=a100:1"), ("gres", "--gres=gpu:a100:1")]:
        submit = next(line for line in log.splitlines() if f"--comment rule_{rule} " in line)
        assert flag in submit, submit
        assert list(by_rule[f"rule_{rule}"]["state"]) == ["COMPLETED"], jobs
        assert "gres/gpu=1" in by_rule[f"rule_{rule}"]["req_tres"].iloc[0], jobs
        # SLURM bound one of the node's (fake) GPUs to the job
        assert (tmp_path / f"out/{rule}.txt").read_text().strip() in {"0", "1"}

    # the job step that runs the rule (the plugin wraps it in srun) sees both GPUs of a gpu=2 job
    assert "--gpus=2" in next(line for line in log.splitlines() if "--comment rule_gpus " in line)
    assert "gres/gpu=2" in by_rule["rule_gpus"]["req_tres"].iloc[0], jobs
    assert (tmp_path / "out/gpus.txt").read_text().strip() == "0,1"

    retries = _profile(SLURM_PROFILE)["retries"]
    assert list(by_rule["rule_flaky"]["state"]) == ["FAILED", "COMPLETED"], jobs
    assert (tmp_path / "out/flaky.txt").read_text().strip() == "ok"
    assert list(by_rule["rule_broken"]["state"]) == ["FAILED"] * (1 + retries), jobs
    assert "Error in rule broken" in log and "SLURM status is: 'FAILED'" in log

    # four tiny jobs, one submission, in series: one job's memory, four jobs' runtime
    tiny = [c for c in by_rule if "tinies" in c]
    assert len(tiny) == 1 and list(by_rule[tiny[0]]["state"]) == ["COMPLETED"], jobs
    runtime = _profile(SLURM_PROFILE)["default-resources"]["runtime"]
    submit = next(line for line in log.splitlines() if f"--comment {tiny[0]} " in line)
    assert f" -t {4 * runtime} --mem 4000 " in submit, submit
    assert all((tmp_path / f"out/tiny_{i}.txt").exists() for i in range(4))


def _text(path: Path) -> str:
    """The file's text, or "" while it does not exist (Snakemake removes a job's log before it starts)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.slurm
def test_a_time_limit_signal_is_retried_and_resumes_where_it_stopped(slurm_cluster, tmp_path: Path) -> None:
    """The profile asks SLURM for SIGTERM before the time limit (--signal=TERM@N, sent to the job's steps,
    not its batch shell); ``scancel --signal=TERM`` delivers the same signal the same way, mid-run. The
    training process checkpoints and exits 75, the profile's retries resubmit the job, and the rerun
    starts at the step that was interrupted: the run's result is that of an uninterrupted run."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["budgets"], config["target_budgets"] = [1e11], [1e12]  # runs long enough to signal mid-run
    config["sweep"].update(steps=4000, lr_calibration={"enabled": False})
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    placed = _snakemake(tmp_path, "--cores", "1", "--workflow-profile", "none", "results/plan/waves/0.tsv",
                        timeout_s=SNAKEMAKE_TIMEOUT_S)
    assert placed.returncode == 0, placed.stdout[-3000:]
    runs = pd.read_csv(tmp_path / "results/plan/waves/0.tsv", sep="\t")
    run_id = str(runs.loc[runs["tokens"].idxmax(), "run_id"])  # the longest run
    target = f"results/runs/{run_id}/metrics.json"
    cmd = ["timeout", "-k", "10", str(SNAKEMAKE_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path),
           "--profile", str(SLURM_PROFILE), *FAST_POLLING, "--verbose", target]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "logs" / "train" / f"{run_id}.log"
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=300)
    while " INFO step " not in _text(log):
        assert proc.poll() is None and datetime.datetime.now() < deadline, "the train job never started training"
        time.sleep(0.05)
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True).stdout
    job_id = next(line.split()[0] for line in jobs.splitlines() if line.endswith(f"rule_train_wildcards_{run_id}"))
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
    out, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT_S)
    assert proc.returncode == 0, out[-6000:]
    assert "--signal=TERM@120" in next(line for line in out.splitlines() if "sbatch call:" in line)

    jobs = _submitted_jobs(out)
    assert jobs["state"].tolist() == ["FAILED", "COMPLETED"], jobs  # stopped, then the profile's retry
    first = (tmp_path / "logs/slurm/rule_train" / run_id / f"{jobs['job_id'].iloc[0]}.log").read_text()
    stopped = int(first.split("stopped after step ", 1)[1].split("/", 1)[0])
    assert "exiting with status 75" in first
    metrics = _metrics(tmp_path, run_id)
    assert metrics["status"] == "ok" and metrics["resumed_from_step"] == stopped  # no step lost
    assert 0 < stopped < metrics["steps"] == metrics["planned_steps"]
