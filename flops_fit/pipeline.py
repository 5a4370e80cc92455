"""The pipeline steps, as the workflow's rules and :func:`flops_fit.find_optimal` both run them.

Each step takes plain values (a prepared config dict, paths) and writes its outputs atomically, so a
rule script is two lines and the Python API is a loop over the same calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from flops_fit import calibration, heldout, placement, planning, recipe, smoke
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
@dataclass
class PlanContext:
    """What planning needs from the user's objects: the sizes, the data's shape and its batch."""

    catalog: planning.SizeCatalog
    tokens_per_sample: int
    fixed_batch: int | None
    train_data: Any
    #: a few training samples as (inputs, targets): their shapes, and the smoke test's batch
    example: tuple[Any, Any]


def plan_context(config: dict, model_cls: type, dataset: Any, eval_dataset: Any) -> PlanContext:
    """Look at the data once (two samples: their shapes, and the smoke test's batch)."""
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
    catalog = planning.SizeCatalog(
        model_cls, config["model"], config["sweep"]["flops_per_token"], example_inputs[:1], tokens_per_sample
    )
    return PlanContext(catalog, tokens_per_sample, fixed_batch, train_data, (example_inputs, example_targets))


def read_losses(table: pd.DataFrame, runs_dir: str | Path) -> dict[str, float]:
    """Final eval loss of every finished run of ``table`` (NaN for diverged ones; absent if not run)."""
    losses = {}
    for run_id in table["run_id"]:
        path = Path(runs_dir) / run_id / "metrics.json"
        if path.exists():
            metrics = json.loads(path.read_text())
            loss = metrics.get("eval_loss")
            ok = metrics.get("status") == "ok" and loss is not None and math.isfinite(loss)
            losses[run_id] = float(loss) if ok else math.nan
    return losses


def first_window(config: dict, ctx: PlanContext) -> tuple[list, list[str]]:
    """The smallest budget's first window (from ``sweep.tokens_per_param``), as placement would choose it."""
    placer = placement.Placer(config, ctx.catalog, calibration.lr_rule(config, ctx.catalog), ctx.fixed_batch)
    budget = min(float(b) for b in config["budgets"])
    return placer.window(budget, recipe.expected_optimal_params(budget, config["sweep"]["tokens_per_param"]))


def smoke_check(config: dict, ctx: PlanContext, loss_fn: Any) -> list[str]:
    """One forward, loss and backward of the smallest first-window model (:mod:`flops_fit.smoke`), before
    any training job: a model, data and loss that do not fit together stop the plan, not every job."""
    window, _ = first_window(config, ctx)
    smallest = min(window, key=lambda size: ctx.catalog.info(size).params)
    model = config["model"]
    return smoke.smoke_test(ctx.catalog.model_cls, model["size_param"], smallest, model.get("kwargs") or {},
                            ctx.example, loss_fn)


def calibration_plan(config: dict, ctx: PlanContext) -> tuple[pd.DataFrame, list[str]]:
    """The lr-calibration runs at the smallest budget (an empty table when calibration is off)."""
    if not config["sweep"]["lr_calibration"]["enabled"]:
        return planning.as_table([]), []
    window, notes = first_window(config, ctx)
    table, more = calibration.plan_calibration(config, ctx.catalog, window, ctx.fixed_batch)
    return table, notes + more + _repetition_warnings(table, ctx.train_data)


def calibrate(config: dict, table: pd.DataFrame, losses: dict[str, float]) -> dict:
    """lr*(N) fitted from the calibration runs (``{"enabled": False}`` when calibration is off)."""
    if not len(table):
        return {"enabled": False}
    law = calibration.fit_lr_law(table, losses, config["sweep"]["lr_calibration"]["exponent_range"])
    return {"enabled": True, **law}


def lr_function(config: dict, ctx: PlanContext, law: dict) -> Callable[[int], float]:
    """The lr of every sweep run: the calibrated law when there is one, else the configured rule."""
    return calibration.law_lr(law) if law.get("enabled") else calibration.lr_rule(config, ctx.catalog)


def place_wave(
    config: dict, ctx: PlanContext, law: dict, table: pd.DataFrame, losses: dict[str, float], wave: int
) -> tuple[pd.DataFrame, list[str]]:
    """The runs table after ``wave``: ``table`` plus the runs placed in this wave (see flops_fit.placement)."""
    placer = placement.Placer(config, ctx.catalog, lr_function(config, ctx, law), ctx.fixed_batch)
    rows, notes = placer.next_wave(table, losses, wave)
    new = planning.as_table(rows)
    if len(table):
        new = new[~new["run_id"].isin(set(table["run_id"]))]
        combined = pd.concat([table, new], ignore_index=True)
    else:
        combined = new.reset_index(drop=True)
    return combined, notes + ctx.catalog.notes + _repetition_warnings(new, ctx.train_data)


def plan(
    config: dict, model_cls: type, dataset: Any, eval_dataset: Any, loss_fn: Any
) -> tuple[pd.DataFrame, list[str]]:
    """The smoke test, then the first wave's runs table (no run finished yet, the configured lr rule)."""
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    notes = smoke_check(config, ctx, loss_fn)
    table, more = place_wave(config, ctx, {"enabled": False}, planning.as_table([]), {}, 0)
    return table, notes + more


def calibration_plan_step(config: dict, out_path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The calibration_plan rule, the first planning job: the smoke test, then the lr-calibration runs."""
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config)
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    notes = smoke_check(config, ctx, loss_fn)
    table, more = calibration_plan(config, ctx)
    write_tsv(table, out_path)
    return table, notes + more


def calibrate_step(config: dict, table_path: str | Path, runs_dir: str | Path, out_path: str | Path) -> dict:
    """The calibrate rule: lr*(N) from the finished calibration runs, to ``lr_calibration.json``."""
    table = planning.read_runs_table(table_path)
    law = calibrate(config, table, read_losses(table, runs_dir))
    write_json(law, out_path)
    return law


def place_step(
    config: dict, wave: int, law_path: str | Path, previous: str | Path | None, runs_dir: str | Path,
    out_path: str | Path,
) -> tuple[pd.DataFrame, list[str]]:
    """The place rule: the runs table after ``wave`` (cumulative), from the finished runs of earlier waves."""
    table = planning.read_runs_table(previous) if previous else planning.as_table([])
    model_cls, dataset, eval_dataset, _ = build_objects(config)
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    law = json.loads(Path(law_path).read_text())
    combined, notes = place_wave(config, ctx, law, table, read_losses(table, runs_dir), wave)
    write_tsv(combined, out_path)
    return combined, notes


def plan_step(
    config: dict, wave_path: str | Path, runs_dir: str | Path, out_path: str | Path
) -> tuple[pd.DataFrame, list[str]]:
    """The plan rule: every planned run (the last wave's table), and which budgets stayed unbracketed."""
    table = planning.read_runs_table(wave_path)
    write_tsv(table, out_path)
    return table, placement.unbracketed(config, table, read_losses(table, runs_dir))


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
    if "role" in table.columns:  # replicates and calibration runs never enter the fit
        table = table[table["role"] == "sweep"]
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


#: what the workflow's N counts (docs/architecture.md), for the figure labels
N_CONVENTION = "matmul parameters: head included, embedding lookups excluded"


def replicate_noise(table: pd.DataFrame, losses: dict[str, float]) -> float | None:
    """Run-to-run loss noise: the pooled standard deviation over seeds of each replicated (budget, size).

    Replicates (``sweep.seed_replicates``) differ from their sweep run only by the seed, so their
    spread is what a loss difference smaller than it cannot be told from. None without replicates.
    """
    if "role" not in table.columns or not (table["role"] == "replicate").any():
        return None
    runs = table[table["role"].isin(["sweep", "replicate"])].assign(loss=lambda t: t["run_id"].map(losses))
    groups = [g["loss"].dropna() for _, g in runs.groupby(["budget", "size"])]
    groups = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return None
    return float(math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof))


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
        bootstrap=fit["bootstrap"], seed=fit["seed"], degree=fit["degree"], huber_delta=fit["huber_delta"],
        noise_sd=replicate_noise(table, read_losses(table, runs_dir)),
        recommend_from=fit["recommend_from"], n_convention=N_CONVENTION,
    )
    if result["noise"]["sd"] is not None:
        result["noise"]["source"] = f"{config['sweep']['seed_replicates']} extra seed(s) of the smallest budget's runs"
    result["warnings"] = warnings + list(result.get("warnings", []))
    write_fit(result, out_dir)
    return result
