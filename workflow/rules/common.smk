# Shared helpers: config preparation and the input/params functions of the rules.
import sys

import torch

from flops_fit import planning
from flops_fit.config import prepare_config
from flops_fit.errors import ConfigError


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


def runs_table():
    """The planned runs (available once the plan checkpoint has run)."""
    return planning.read_runs_table(checkpoints.plan.get().output.runs)


def all_metrics(wildcards):
    return expand("results/runs/{run_id}/metrics.json", run_id=runs_table()["run_id"])


def run_plan(wildcards):
    """This run's row of the plan: a params value, so a changed plan retrains only the runs it changes."""
    return planning.run_row(runs_table(), wildcards.run_id)


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
    return f"results/checkpoints/{wildcards.run_id}"
