"""The pipeline steps, as the workflow's rules and :func:`flops_fit.find_optimal` both run them.

Each step takes plain values (a prepared config dict, paths) and writes its outputs atomically, so a
rule script is two lines and the Python API is a loop over the same calls.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from flops_fit import heldout, planning, smoke
from flops_fit.batch_format import BatchFormat
from flops_fit.io import write_json, write_tsv
from flops_fit.errors import ConfigError
from flops_fit.model_contract import instantiate
from flops_fit.validation import build_objects, validate_config


# ----------------------------------------------------------------------------------------- validate
def validate_step(config: dict, out_path: str | Path) -> dict:
    """Import and check model, data and loss; record the resolved config for the later steps."""
    summary = validate_config(config)
    write_json({"config": config, "summary": summary}, out_path)
    return summary


def read_validated(path: str | Path) -> dict:
    """The resolved config written by :func:`validate_step`."""
    return json.loads(Path(path).read_text())["config"]


# --------------------------------------------------------------------------------------------- plan
def plan_step(config: dict, out_path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The plan rule: build the objects named in config, plan, write the runs table."""
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config)
    table, warnings = plan(config, model_cls, dataset, eval_dataset, loss_fn)
    write_tsv(table, out_path)
    return table, warnings


def plan(
    config: dict, model_cls: type, dataset: Any, eval_dataset: Any, loss_fn: Any
) -> tuple[pd.DataFrame, list[str]]:
    """The runs table; the only step that looks at the data (two samples: their shapes, and the smoke test)."""
    batch_format = BatchFormat.from_config(config)
    train_data, _ = heldout.split_train_eval(dataset, eval_dataset, config["eval_dataset"]["samples"], batch_format)
    example_inputs, example_targets = heldout.first_sample(train_data, batch_format, count=smoke.SAMPLES)
    tokens_per_sample = config["dataset"]["tokens_per_sample"] or example_targets.numel() // len(example_targets)
    fixed_batch = None
    if isinstance(dataset, DataLoader):
        if dataset.batch_size is None:
            raise ConfigError(
                "dataset: the DataLoader has no fixed batch_size (custom batch_sampler), so runs cannot "
                "be planned to a token budget. Give a DataLoader with batch_size=..., or the Dataset itself."
            )
        fixed_batch = dataset.batch_size
    model = config["model"]
    sizes, warnings = planning.describe_sizes(
        model_cls, model["size_param"], model["sizes"], model["kwargs"],
        config["sweep"]["flops_per_token"], example_inputs[:1], tokens_per_sample,
    )
    table, notes = planning.plan_sweep(config, sizes, tokens_per_sample, fixed_batch=fixed_batch)
    smallest = table.loc[table["params"].idxmin(), "size"]
    notes += smoke.smoke_test(model_cls, model["size_param"], planning.as_size(smallest), model["kwargs"],
                              (example_inputs, example_targets), loss_fn)
    return table, warnings + notes + _repetition_warnings(table, train_data)


def _repetition_warnings(table: pd.DataFrame, train_data: Any) -> list[str]:
    """Warn when a run would see its data more than once (repetition changes the law)."""
    try:
        available = len(train_data)
    except TypeError:  # an IterableDataset: its length is unknown, training counts tokens
        return []
    samples = table["steps"] * table["batch_size"]
    over = table[samples > available]
    return [
        f"{r.run_id}: trains on {r.steps * r.batch_size} samples but the dataset has {available}; "
        f"it will repeat data ({r.steps * r.batch_size / available:.1f} epochs)"
        for r in over.itertuples()
    ]


# -------------------------------------------------------------------------------------------- train
def build_training_job(config_path: str | Path, runs_path: str | Path, run_id: str) -> dict:
    """Everything ``run_training`` needs for one run, built exactly as validation built it."""
    config = read_validated(config_path)
    run = planning.run_row(planning.read_runs_table(runs_path), run_id)
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config)
    return training_job(config, run, model_cls, dataset, eval_dataset, loss_fn)


def training_job(config: dict, run: dict, model_cls: type, dataset: Any, eval_dataset: Any, loss_fn: Any) -> dict:
    """The keyword arguments of ``run_training`` (plus ``run``) for one row of the plan."""
    batch_format = BatchFormat.from_config(config)
    samples = config["eval_dataset"]["samples"]
    train_data, eval_data = heldout.split_train_eval(dataset, eval_dataset, samples, batch_format)
    torch.manual_seed(int(run["seed"]))  # same seed, same initial weights, in any process
    model = instantiate(model_cls, run["size_param"], run["size"], config["model"]["kwargs"], device="cpu")
    return {
        "run": run,
        "model": model,
        "train_data": train_data,
        "eval_data": eval_data,
        "loss_fn": loss_fn,
        "settings": config["training"],
        "batch_format": batch_format,
    }


# ---------------------------------------------------------------------------------------------- fit
def collect_results(table: pd.DataFrame, runs_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The fit's input: one row per finished run (N, D, loss, C, budget), diverged runs left out."""
    rows, warnings = [], []
    for run in table.itertuples():
        metrics = json.loads((Path(runs_dir) / run.run_id / "metrics.json").read_text())
        loss = metrics.get("eval_loss")
        if metrics.get("status") != "ok" or loss is None or not math.isfinite(loss):
            warnings.append(
                f"{run.run_id} excluded from the fit: status {metrics.get('status')!r}"
                f" ({metrics.get('reason') or 'no finite eval loss'})"
            )
            continue
        rows.append({
            "run_id": run.run_id, "budget": run.budget, "size": run.size, "N": run.params,
            "D": metrics["tokens"], "C": metrics["flops"], "loss": loss,
        })
    return pd.DataFrame(rows), warnings


def fit_step(config: dict, runs_path: str | Path, runs_dir: str | Path, out_dir: str | Path) -> dict:
    """The fit rule: scaling laws from the finished runs, written to fit.json and summary.tsv."""
    return fit_runs(config, planning.read_runs_table(runs_path), runs_dir, out_dir)


def fit_runs(config: dict, table: pd.DataFrame, runs_dir: str | Path, out_dir: str | Path) -> dict:
    from flops_fit.fitting import fit_table, write_fit

    results, warnings = collect_results(table, runs_dir)
    write_tsv(results, Path(out_dir) / "runs_results.tsv")
    fit = config["fit"]
    result = fit_table(
        results, budgets=config["budgets"], target_budgets=config["target_budgets"],
        bootstrap=fit["bootstrap"], seed=fit["seed"], degree=fit["degree"],
    )
    result["warnings"] = warnings + list(result.get("warnings", []))
    write_fit(result, out_dir)
    return result
