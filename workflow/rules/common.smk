# Shared helpers: config preparation and the input/params functions of the rules.
import json
import os
import sys

import torch

from flops_fit import placement, planning
from flops_fit.config import prepare_config
from flops_fit.config import sweep_config as config_of_sweep
from flops_fit.config import training_identity
from flops_fit.cost import CORES_ENV, RUN_THREADS_ENV
from flops_fit.errors import ConfigError
from flops_fit.paths import Results
from flops_fit.script_cli import SCRIPTS_ENV
from snakemake.exceptions import WorkflowError
from flops_fit.worker.client import WORKER_ENV

# Every results path, with its writer and readers: flops_fit/paths.py.
RESULTS = Results("results")


def configfile_hint(configfiles: list) -> str:
    """How to layer an overlay: a --configfile replaces the example, so an overlay alone lacks the required keys."""
    if not configfiles:
        return ""
    return (
        "\nA --configfile is a complete config of its own (config/config.yaml is not loaded). To change "
        "a few keys of a base config, give both: --configfile config/config.yaml my_overlay.yaml"
    )


# Coerce "1e18"-style numbers, validate against workflow/schemas/config.schema.yaml, fill defaults.
try:
    config.update(prepare_config(config))
except ConfigError as error:
    sys.exit(f"flops-fit: invalid configuration: {error}{configfile_hint(workflow.overwrite_configfiles)}")


wildcard_constraints:
    run_id="[^/]+",
    wave="[0-9]+",
    stable_id="[^/]+",
    step="[0-9]+",


# One-process train and stable jobs run in a child of the training worker (flops_fit/worker), asked
# for through the environment that jobs inherit: an option in the train rule's command would change
# its shell text or params, which Snakemake's rerun triggers answer by retraining every finished run.
os.environ[WORKER_ENV] = str(config["worker"]["idle_seconds"]) if config["worker"]["enabled"] else "0"

# Every other rule that runs Python runs its workflow/scripts/*.py through `flops-fit script`
# (flops_fit/script_cli.py), so that it too runs in the worker instead of paying Python and torch's
# start-up. The scripts' folder travels through the environment: a rule's shell text is its code rerun
# trigger, and an absolute path in it would rerun every job of a checkout that moved.
os.environ[SCRIPTS_ENV] = os.path.join(workflow.basedir, "scripts")



def sweep_config():
    """The config the sweep depends on (flops_fit.config.sweep_config: all but ``verify`` and
    ``worker``); the validate rule's params are its rerun trigger."""
    return config_of_sweep(config)


def metrics_of(table):
    return [str(RESULTS.metrics(run_id)) for run_id in table["run_id"]]


def calibration_table():
    """The lr-calibration runs (available once the calibration_plan checkpoint has run)."""
    return planning.read_runs_table(checkpoints.calibration_plan.get().output.runs)


def calibration_metrics(wildcards):
    return metrics_of(calibration_table())


def previous_flag(wildcards, input):
    """The place script's ``--previous`` table: none for wave 0."""
    return f"--previous {input.previous}" if "previous" in input.keys() else ""


def designs_flag(wildcards, input):
    """The place script's ``--designs``: the earlier waves' design records (none for wave 0)."""
    return f"--designs {' '.join(input.designs)}" if "designs" in input.keys() else ""


def wave_table(wave):
    """The cumulative runs table after placement wave ``wave`` (once its checkpoint has run)."""
    return planning.read_runs_table(checkpoints.place.get(wave=wave).output.runs)


def wave_inputs(wildcards):
    """A wave places runs from the lr law and the finished runs of the wave before it."""
    wave = int(wildcards.wave)
    inputs = {"config": RESULTS.validated, "lr": RESULTS.calibration_law}
    if wave > 0:
        table = wave_table(wave - 1)
        inputs["previous"] = checkpoints.place.get(wave=wave - 1).output.runs
        inputs["metrics"] = metrics_of(table[table["wave"] == wave - 1])
        # the earlier waves' decisions: a sweep.precision sweep stops when its chosen waves stall
        inputs["designs"] = [checkpoints.place.get(wave=w).output.design for w in range(wave)]
    return inputs


def placed_waves():
    """(wave, its table file) in order, lazily, to the first wave that places nothing: a wave is a function
    of the finished runs, so every later one would place nothing too. Reading wave w makes Snakemake run
    the waves before it (and their runs) first; a caller that stops early never waits for later waves."""
    for wave in range(placement.MAX_WAVES):
        path = checkpoints.place.get(wave=wave).output.runs
        yield wave, path
        if wave and not (planning.read_runs_table(path)["wave"] == wave).any():
            return
    raise WorkflowError(f"the sweep placed runs in {placement.MAX_WAVES} waves without ending; see logs/plan/")


def final_wave():
    return list(placed_waves())[-1][0]


def last_wave(wildcards):
    """The last wave's cumulative table. Named inputs, each its own function, not unpack(): until the
    waves are placed a dry run prints the plan rule's command with every name it uses still there."""
    return checkpoints.place.get(wave=final_wave()).output.runs


def wave_designs(wildcards):
    return [checkpoints.place.get(wave=w).output.design for w in range(final_wave() + 1)]


def runs_table():
    """Every planned sweep run and replicate: the last wave's cumulative table."""
    return wave_table(final_wave())


def all_metrics(wildcards):
    return metrics_of(runs_table())


def verify_metrics(wildcards):
    """The verification runs' metrics (available once the verify_plan checkpoint has run)."""
    return metrics_of(planning.read_runs_table(checkpoints.verify_plan.get().output.runs))


def plan_tables():
    """Every plan table in order (calibration, the waves, the verification runs); later ones are read
    only when needed, so a sweep run never waits for the verify plan."""
    yield checkpoints.calibration_plan.get().output.runs
    for _, path in placed_waves():
        yield path
    yield checkpoints.verify_plan.get().output.runs


def run_source(run_id):
    """(table file, row) of a run: the calibration table, the first wave that placed it, or the verify plan."""
    for path in plan_tables():
        table = planning.read_runs_table(path)
        if run_id in set(table["run_id"]):
            return path, planning.run_row(table, run_id)
    raise KeyError(f"run {run_id!r} is in no plan table")


def run_table_file(wildcards):
    # ancient(): a rewritten plan must not retrain finished runs; per-run changes are caught by
    # the params rerun trigger instead (params.run is this run's identity).
    return ancient(run_source(wildcards.run_id)[0])


def run_plan(wildcards):
    """This run's identity (its plan row without bookkeeping): a changed plan retrains only what it changes."""
    return planning.run_identity(run_source(wildcards.run_id)[1])


def run_threads():
    """torch's threads of one run: training.threads, else one per training process (as before)."""
    training = config["training"]
    return max(training["threads"] or 1, training["processes_per_run"])


# The plan's cost estimate (flops_fit.cost) needs the threads of a run and the cores Snakemake may use;
# through the environment, as the worker's setting: a param of calibration_plan would re-plan on a change.
os.environ[RUN_THREADS_ENV] = str(run_threads())
def snakemake_cores():
    try:
        return workflow.cores or 1
    except Exception:  # no --cores (a cluster executor): one run at a time is all the estimate assumes
        return 1


os.environ[CORES_ENV] = str(snakemake_cores())


def train_threads(wildcards):
    """The train rule's threads (capped by Snakemake at --cores): what `flops-fit train --threads` gets."""
    return run_threads()


def stable_threads(wildcards):
    """A stable segment trains in one process: training.threads, else 1 (as before)."""
    return config["training"]["threads"] or 1


def train_gpus(wildcards):
    """One GPU per training process on CUDA, none on CPU."""
    device = config["training"]["device"]
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return config["training"]["processes_per_run"] if on_cuda else 0


def train_launcher(wildcards):
    """`flops-fit train` in one process, or under torchrun with one process per device (DDP)."""
    n = config["training"]["processes_per_run"]
    if n == 1:
        return "python -m flops_fit"
    return f"torchrun --standalone --nproc_per_node={n} -m flops_fit"


def train_runtime(wildcards):
    """Minutes to request from a scheduler, from the run's FLOPs and an assumed throughput."""
    res = config["resources"]
    return planning.runtime_minutes(
        run_plan(wildcards)["achieved_flops"], res["train_flops_per_second"], res["min_runtime_minutes"]
    )


def checkpoint_dir(wildcards):
    """Resumable state lives outside the declared outputs: Snakemake deletes those before a retry."""
    return RESULTS.checkpoint_dir(wildcards.run_id)


# ------------------------------------------------------------------ sweep.reuse: branches (stable rule)
def branch_input(wildcards):
    """A cooldown run's branch checkpoint (nothing for a standalone run). ancient(): a stable run
    extended later never retrains the cooldowns that branched off it earlier."""
    run = run_source(wildcards.run_id)[1]
    if not run.get("branch_of"):
        return []
    return {"branch": ancient(RESULTS.branch_checkpoint(run["branch_of"], run["branch_step"]))}


def branch_flag(wildcards):
    run = run_source(wildcards.run_id)[1]
    if not run.get("branch_of"):
        return ""
    return f"--branch-from {RESULTS.branch_dir(run['branch_of'], run['branch_step'])}"


def stable_source(stable_id, step):
    """(wave table file, segment) of the first wave that planned stable run ``stable_id``'s segment to ``step``.

    The first wave fixes where the segment starts (its branch point before ``step`` then), so a later
    wave that adds branch points never changes a segment already trained."""
    for _, path in placed_waves():
        table = planning.read_runs_table(path)
        for segment in planning.stable_segments(table):
            if segment.stable_id == stable_id and segment.end == int(step):
                return path, segment
    raise KeyError(f"no plan table has a segment of stable run {stable_id!r} ending at step {step}")


def stable_inputs(wildcards):
    """The segment's plan table and, unless it starts at step 0, the previous branch checkpoint of
    the same stable run (ancient(): re-placing or extending never retrains a prefix)."""
    path, segment = stable_source(wildcards.stable_id, wildcards.step)
    inputs = {"config": ancient(RESULTS.validated), "runs": ancient(path)}
    if segment.start:
        inputs["previous"] = ancient(RESULTS.branch_checkpoint(segment.stable_id, segment.start))
    return inputs


def stable_plan(wildcards):
    """The segment's identity (stable run, start, end): the stable rule's rerun trigger."""
    segment = stable_source(wildcards.stable_id, wildcards.step)[1]
    return {**segment.identity, "start": segment.start, "end": segment.end}


def stable_start_flag(wildcards):
    segment = stable_source(wildcards.stable_id, wildcards.step)[1]
    return f"--start-from {RESULTS.branch_dir(segment.stable_id, segment.start)}" if segment.start else ""


def stable_runtime(wildcards):
    """Minutes to request from a scheduler, from the segment's FLOPs (as train_runtime for a run)."""
    res = config["resources"]
    segment = stable_source(wildcards.stable_id, wildcards.step)[1]
    return planning.runtime_minutes(segment.flops, res["train_flops_per_second"], res["min_runtime_minutes"])


def stable_gpus(wildcards):
    """One GPU on CUDA (a stable segment trains in one process), none on CPU."""
    return 1 if train_gpus(wildcards) else 0
