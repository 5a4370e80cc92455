"""The pipeline steps, as the workflow's rules and :func:`flops_fit.find_optimal` both run them.

One ``<rule>_step`` per rule of the workflow (rule, script and step share the name): it takes plain
values (a prepared config dict, the paths its rule names: :mod:`flops_fit.paths`) and writes its
outputs atomically, so a rule script is a few lines and the Python API is a loop over the same
calls. The modules below the pipeline (planning, training, fitting, plotting) import nothing from it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from flops_fit import calibration, cost, design, heldout, learning, placement, planning, recommend, smoke, verify
from flops_fit.data import dataset_samples
from flops_fit.batch_format import BatchFormat
from flops_fit.errors import ConfigError
from flops_fit.fitting import ScalingFit, fit_table, read_fit, write_fit
from flops_fit.fitting.flops_curve import FlopsCurve
from flops_fit.fitting.records import Cost
from flops_fit.fitting.table import MIN_POINTS
from flops_fit.io import write_json, write_text, write_tsv
from flops_fit.paths import run_file
from flops_fit.recipe import Recipe
from flops_fit.model_contract import instantiate
from flops_fit.validation import build_objects, loss_floor, validate_config


# ----------------------------------------------------------------------------------------- validate
def validate_step(config: dict, out_path: str | Path, objects: dict[str, Any] | None = None) -> dict:
    """Import and check model, data and loss; record the resolved config for the later steps.

    ``objects`` (:func:`flops_fit.find_optimal`): the model class, datasets and loss themselves
    (keys ``model``, ``dataset``, ``eval_dataset``, ``loss``), checked instead of importing the
    config's references.
    """
    summary = validate_config(config, objects=objects)
    write_validated(config, summary, out_path)
    return summary


def write_validated(config: dict, summary: dict, out_path: str | Path) -> None:
    """``validated.json``: the resolved config and the checks' summary. A config file's values are JSON
    already; find_optimal's model_kwargs may hold any object (a dtype): recorded by its repr, as the
    run's identity never reads them back from here."""
    write_json(json.loads(json.dumps({"config": config, "summary": summary}, default=repr)), out_path)


def read_validated(path: str | Path) -> dict:
    """The resolved config written by :func:`validate_step`."""
    return json.loads(Path(path).read_text())["config"]


# --------------------------------------------------------------------------------------------- plan
@dataclass
class PlanContext:
    """What planning needs: the recipe, and from the user's objects the sizes, the data's shape and its batch."""

    recipe: Recipe
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
    recipe = Recipe.from_config(config)
    catalog = planning.SizeCatalog(model_cls, config["model"], recipe.flops_per_token, example_inputs[:1], tokens_per_sample)
    return PlanContext(recipe, catalog, tokens_per_sample, fixed_batch, train_data, (example_inputs, example_targets))


def read_losses(table: pd.DataFrame, runs_dir: str | Path) -> dict[str, float]:
    """Final eval loss of every finished run of ``table`` (NaN for diverged ones; absent if not run)."""
    losses = {}
    for run_id in table["run_id"]:
        path = run_file(runs_dir, run_id)
        if path.exists():
            metrics = json.loads(path.read_text())
            loss = metrics.get("eval_loss")
            ok = metrics.get("status") == "ok" and loss is not None and math.isfinite(loss)
            losses[run_id] = float(loss) if ok else math.nan
    return losses


def first_window(config: dict, ctx: PlanContext) -> tuple[list, list[str]]:
    """The smallest budget's first window (from ``sweep.tokens_per_param``), as placement would choose it."""
    placer = placement.Placer(ctx.recipe, config["budgets"], ctx.catalog, calibration.lr_rule(ctx.recipe, ctx.catalog),
                              ctx.fixed_batch)
    budget = min(float(b) for b in config["budgets"])
    return placer.window(budget, placer.first_center(budget))


def loader_batch_notes(config: dict, ctx: PlanContext) -> list[str]:
    """One warning when a user DataLoader's batch replaces the batch the plan would have chosen.

    A DataLoader is passed through untouched, so every run is planned with the loader's own samples
    per step (steps = tokens / (loader batch x tokens_per_sample)), which is what training then draws.
    The warning names both batches, since a small loader batch multiplies the steps (and the noise of
    every step) without the user having asked for it. Empty when they agree or there is no loader."""
    if ctx.fixed_batch is None:
        return []
    window, _ = first_window(config, ctx)
    budget = min(float(b) for b in config["budgets"])
    planned = set()
    for size in window:
        info = ctx.catalog.info(size)
        tokens = budget / info.flops_per_token
        planned.add(ctx.recipe.batch_plan(info.params, budget, tokens, ctx.tokens_per_sample,
                                            flops_per_token=info.flops_per_token)[0])
    if planned == {ctx.fixed_batch}:
        return []
    rule = ("sweep.batch_size" if ctx.recipe.batch_size else "sweep.steps" if ctx.recipe.steps
            else "the batch law (sweep.batch)")
    plan_batch = (f"{min(planned)}" if len(planned) == 1 else f"{min(planned)}-{max(planned)}")
    return [
        f"dataset: the DataLoader's batch_size={ctx.fixed_batch} replaces the plan's batch of {plan_batch} "
        f"samples per step ({rule}, at the smallest budget {budget:.3g}); every run is planned with "
        f"{ctx.fixed_batch} samples per step (steps = tokens / ({ctx.fixed_batch} x {ctx.tokens_per_sample} "
        "tokens)), as training will draw them. Pass the Dataset itself (not a DataLoader) to let the plan "
        "choose the batch, or give the DataLoader the batch you want"
    ]


def smoke_check(config: dict, ctx: PlanContext, loss_fn: Any) -> list[str]:
    """The plan's first checks, run once per sweep before any training job: a DataLoader whose batch
    differs from the plan's (:func:`loader_batch_notes`), then one forward, loss and backward of the
    smallest first-window model (:mod:`flops_fit.smoke`): a model, data and loss that do not fit
    together stop the plan, not every job."""
    notes = loader_batch_notes(config, ctx)
    window, _ = first_window(config, ctx)
    smallest = min(window, key=lambda size: ctx.catalog.info(size).params)
    model = config["model"]
    return notes + smoke.smoke_test(ctx.catalog.model_cls, model["size_param"], smallest,
                                    model.get("kwargs") or {}, ctx.example, loss_fn)


def calibration_plan(config: dict, ctx: PlanContext) -> tuple[pd.DataFrame, list[str]]:
    """The lr-calibration runs at the smallest budget (an empty table when calibration is off)."""
    if not ctx.recipe.lr_calibration.enabled:
        return planning.as_table([]), []
    window, notes = first_window(config, ctx)
    budget = min(float(b) for b in config["budgets"])
    table, more = calibration.plan_calibration(ctx.recipe, budget, ctx.catalog, window, ctx.fixed_batch)
    table = planning.with_epochs(table, dataset_samples(ctx.train_data))
    return table, notes + more + planning.repetition_warning(table, "lr-calibration runs")


def chance_loss(config: dict) -> float | None:
    """``fit.chance_loss``: the loss of a model that learned nothing (ln K for K balanced classes), or None."""
    value = (config.get("fit") or {}).get("chance_loss")
    return None if value is None else float(value)


def no_learning_runs(config: dict, table: pd.DataFrame, runs_dir: str | Path) -> dict[str, str]:
    """run id → why it did not learn, for the finished runs of ``table`` whose loss stayed flat (flops_fit.learning)."""
    return learning.flat_runs(table["run_id"] if len(table) else [], runs_dir, chance_loss(config))


def calibrate(config: dict, table: pd.DataFrame, losses: dict[str, float], flat: dict[str, str] | None = None) -> dict:
    """lr*(N) fitted from the calibration runs (``{"enabled": False}`` when calibration is off); the runs
    of ``flat`` (:func:`no_learning_runs`) did not learn and count as failed."""
    if not len(table):
        return {"enabled": False}
    law = calibration.fit_lr_law(table, losses, Recipe.from_config(config).lr_calibration.exponent_range, flat)
    return {"enabled": True, **law}


def lr_function(config: dict, ctx: PlanContext, law: dict) -> Callable[[int], float]:
    """The lr of every sweep run: the calibrated law when there is one, else the configured rule."""
    return calibration.law_lr(law) if law.get("enabled") else calibration.lr_rule(ctx.recipe, ctx.catalog)


def place_wave(
    config: dict, ctx: PlanContext, law: dict, table: pd.DataFrame, losses: dict[str, float], wave: int,
    runs_dir: str | Path | None = None, history: list[float | None] = (),
) -> tuple[pd.DataFrame, list[str], design.Decision | None]:
    """The runs table after ``wave``: ``table`` plus the runs placed in this wave (see flops_fit.placement),
    its notes and, with ``sweep.precision`` (which fits the finished runs in ``runs_dir``; ``history``:
    the widths earlier chosen waves were decided from), the decision behind a chosen wave."""
    decisions: list[design.Decision] = []
    chooser = None
    if ctx.recipe.precision is not None and runs_dir is not None:
        chooser = precision_chooser(config, ctx, runs_dir, decisions, history)
    placer = placement.Placer(ctx.recipe, config["budgets"], ctx.catalog, lr_function(config, ctx, law),
                              ctx.fixed_batch, chooser)
    rows, notes = placer.next_wave(table, losses, wave)
    new = planning.as_table(rows)
    if len(table):
        new = new[~new["run_id"].isin(set(table["run_id"]))]
        combined = pd.concat([table, new], ignore_index=True)
    else:
        combined = new.reset_index(drop=True)
    combined = planning.assign_branches(combined, set(new["run_id"]), ctx.recipe, config["budgets"])
    combined = planning.with_epochs(combined, dataset_samples(ctx.train_data))
    if wave == 0 and ctx.recipe.precision is not None and ctx.recipe.max_flops is None:
        notes = notes + [f"sweep.precision without sweep.max_flops: a goal the sweep cannot reach keeps adding budgets "
                         f"toward {ctx.recipe.precision.budget:.3g}; set sweep.max_flops to cap what it spends"]
    return combined, notes + ctx.catalog.notes, decisions[-1] if decisions else None


def placed_flops(table: pd.DataFrame) -> float:
    """FLOPs of the placed runs (sweep and replicates): what ``sweep.max_flops`` caps."""
    if not len(table):
        return 0.0
    return float(table.loc[table["role"].isin(["sweep", "replicate"]), "achieved_flops"].sum())


def precision_chooser(config: dict, ctx: PlanContext, runs_dir: str | Path, decisions: list[design.Decision],
                      history: list[float | None] = ()) -> placement.Chooser:
    """``sweep.precision``: fit the finished runs as the fit rule does, then :func:`design.decide`."""
    precision = ctx.recipe.precision

    def choose(table: pd.DataFrame, densifiable: list[float]) -> design.Decision:
        result, _ = fit_runs(config, table, runs_dir)
        sweep = table[table["role"] == "sweep"]
        decision = design.decide(
            result, precision.budget, precision.n_star, placed=sorted({float(b) for b in sweep["budget"]}),
            ladder=[float(b) for b in config["budgets"]], spent=placed_flops(table), cap=ctx.recipe.max_flops,
            sizes_per_budget=ctx.recipe.sizes_per_budget, sizes_per_wave=precision.sizes_per_wave,
            densifiable=densifiable, loss_goal=precision.loss, history=history,
        )
        decisions.append(decision)
        return decision

    return choose


def wave_design(table: pd.DataFrame, wave: int, decision: design.Decision | None) -> dict:
    """One wave's design record: the runs it added, the FLOPs placed so far, the decision behind it."""
    new = table[table["wave"] == wave] if len(table) else table
    return {"wave": wave, "runs": int(len(new)),
            "flops": float(new["achieved_flops"].sum()) if len(new) else 0.0,
            "flops_placed": placed_flops(table), "decision": None if decision is None else decision.to_dict()}


def decided_widths(waves: list[dict]) -> list[float | None]:
    """The N* widths the chosen waves among ``waves`` (design records) were decided from, in order."""
    return [w["decision"]["width"] for w in waves if (w.get("decision") or {}).get("status") == "add"]


def design_record(config: dict, waves: list[dict]) -> dict:
    """``plan/design.json``: the goal, every wave's record and how the sweep ended."""
    precision = config["sweep"].get("precision")
    chosen = [w["decision"] for w in waves if w["decision"] is not None]
    return {"precision": precision, "max_flops": config["sweep"].get("max_flops"), "waves": waves,
            "outcome": chosen[-1] if chosen else None}


def plan(
    config: dict, model_cls: type, dataset: Any, eval_dataset: Any, loss_fn: Any
) -> tuple[pd.DataFrame, list[str]]:
    """The smoke test, then the first wave's runs table (no run finished yet, the configured lr rule)."""
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    notes = smoke_check(config, ctx, loss_fn)
    table, more, _ = place_wave(config, ctx, {"enabled": False}, planning.as_table([]), {}, 0)
    return table, notes + more


def calibration_plan_step(
    config: dict, out_path: str | Path, cost_path: str | Path | None = None, threads: int | None = None,
    cores: int = 1,
) -> tuple[pd.DataFrame, list[str]]:
    """The calibration_plan rule, the first planning job: the smoke test, the lr-calibration runs and,
    given ``cost_path``, the sweep's cost estimate (runs of ``threads`` threads, ``cores`` cores)."""
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config)
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    notes = smoke_check(config, ctx, loss_fn)
    table, more = calibration_plan(config, ctx)
    if cost_path is not None:
        training = config["training"]
        on_cuda = training["device"] == "cuda" or (training["device"] == "auto" and torch.cuda.is_available())
        gpus = torch.cuda.device_count() if on_cuda else 0
        parallel = cost.parallel_runs(on_cuda, cores, threads or 1, gpus, training["processes_per_run"])
        estimate = cost_estimate(config, ctx, loss_fn, table, threads, parallel)
        write_json(estimate.to_dict(), cost_path)
        notes = notes + [estimate.describe()]
    write_tsv(table, out_path)
    return table, notes + more


def cost_estimate(
    config: dict, ctx: PlanContext, loss_fn: Any, calibration_table: pd.DataFrame, threads: int | None,
    parallel_runs: int,
) -> cost.CostEstimate:
    """The sweep's cost before any run trains (:mod:`flops_fit.cost`): the calibration runs and the first
    wave as planned, later budgets from their a-priori windows (and the seed replicates), and one timed
    step of the smallest planned model where training runs, with ``threads`` torch threads."""
    first, _, _ = place_wave(config, ctx, {"enabled": False}, planning.as_table([]), {}, 0)
    placer = placement.Placer(ctx.recipe, config["budgets"], ctx.catalog, calibration.lr_rule(ctx.recipe, ctx.catalog),
                              ctx.fixed_batch)
    placed = {float(b) for b in first["budget"]}
    later_flops, later_runs = 0.0, 0
    ladder = sorted(float(b) for b in config["budgets"])
    if ctx.recipe.precision is not None:  # later waves are chosen as the sweep goes: not known up front
        ladder = ladder[: ctx.recipe.precision.start_budgets]
    for budget in ladder:
        if not any(math.isclose(budget, b, rel_tol=1e-9) for b in placed):
            sizes, _ = placer.window(budget, placer.first_center(budget))
            later_flops += len(sizes) * budget
            later_runs += len(sizes)
    if ctx.recipe.seed_replicates and not (first["role"] == "replicate").any():
        smallest_budget = min(float(b) for b in config["budgets"])
        runs = first[(first["role"] == "sweep") & (first["budget"] - smallest_budget).abs().le(1e-9 * smallest_budget)]
        later_flops += ctx.recipe.seed_replicates * float(runs["achieved_flops"].sum())
        later_runs += ctx.recipe.seed_replicates * len(runs)
    planned = pd.concat([t for t in (calibration_table, first) if len(t)], ignore_index=True)
    smallest = planned.loc[planned["params"].idxmin()]
    samples = int(min(int(smallest["batch_size"]), cost.MAX_SAMPLES))
    training, model = config["training"], config["model"]
    seconds, targets, device = smoke.measure_step(
        ctx.catalog.model_cls, model["size_param"], planning.as_size(smallest["size"]), model.get("kwargs") or {},
        ctx.example, loss_fn,
        samples, training["device"], training["precision"], threads,
    )
    step_flops = float(smallest["flops_per_token"]) * targets
    calibration_flops = float(calibration_table["achieved_flops"].sum()) if len(calibration_table) else 0.0
    return cost.estimate(
        calibration_flops, planning.compute_cost(first)[0], later_flops, len(calibration_table) + len(first),
        later_runs, seconds, step_flops, device, f"{model['size_param']}={planning.as_size(smallest['size'])}, "
        f"{samples} samples/step", threads, parallel_runs,
    )


def calibrate_step(config: dict, table_path: str | Path, runs_dir: str | Path, out_path: str | Path) -> dict:
    """The calibrate rule: lr*(N) from the finished calibration runs, to ``lr_calibration.json``."""
    table = planning.read_runs_table(table_path)
    law = calibrate(config, table, read_losses(table, runs_dir), no_learning_runs(config, table, runs_dir))
    write_json(law, out_path)
    return law


def place_step(
    config: dict, wave: int, law_path: str | Path, previous: str | Path | None, runs_dir: str | Path,
    out_path: str | Path, design_path: str | Path, previous_designs: list[str | Path] = (),
) -> tuple[pd.DataFrame, list[str]]:
    """The place rule: the runs table after ``wave`` (cumulative), from the finished runs of earlier
    waves (and their design records), and the wave's design record."""
    table = planning.read_runs_table(previous) if previous else planning.as_table([])
    model_cls, dataset, eval_dataset, _ = build_objects(config)
    ctx = plan_context(config, model_cls, dataset, eval_dataset)
    law = json.loads(Path(law_path).read_text())
    history = decided_widths([json.loads(Path(p).read_text()) for p in previous_designs])
    combined, notes, decision = place_wave(config, ctx, law, table, read_losses(table, runs_dir), wave, runs_dir,
                                           history)
    write_json(wave_design(combined, wave, decision), design_path)
    write_tsv(combined, out_path)
    return combined, notes


def plan_step(
    config: dict, wave_path: str | Path, runs_dir: str | Path, out_path: str | Path,
    design_paths: list[str | Path] = (), design_out: str | Path | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The plan rule: every planned run (the last wave's table), which of them repeat data (one line for
    all of them), how far 6N is off their FLOPs per token (one line) and which budgets stayed
    unbracketed; the waves' design records to ``design_out``."""
    table = planning.read_runs_table(wave_path)
    if design_out is not None:
        write_json(design_record(config, [json.loads(Path(p).read_text()) for p in design_paths]), design_out)
    write_tsv(table, out_path)
    return table, (planning.repetition_warning(table) + planning.six_n_warning(table)
                   + placement.unbracketed(sweep_budgets(config, table), table, read_losses(table, runs_dir)))


def training_samples(config: dict, dataset: Any, eval_dataset: Any) -> int | None:
    """Samples training draws from (:func:`flops_fit.data.dataset_samples`), without reading the data:
    a map-style dataset without an ``eval_dataset`` loses its held-out tail (``heldout.split_train_eval``)."""
    samples = dataset_samples(dataset)
    if samples is None or eval_dataset is not None or isinstance(dataset, DataLoader):
        return samples
    return max(samples - config["eval_dataset"]["samples"], 0) or None


# -------------------------------------------------------------------------------------------- train
def training_job(config: dict, run: dict, model_cls: type, dataset: Any, eval_dataset: Any, loss_fn: Any) -> dict:
    """The keyword arguments of ``run_training`` for one row of the plan.

    ``run`` is the row's identity (:func:`flops_fit.planning.run_identity`): the training engine
    fingerprints its checkpoints with the whole row it is given, so a checkpoint is resumed exactly
    when the workflow's rerun trigger and ``find_optimal`` would call it the same run.
    """
    batch_format = BatchFormat.from_config(config)
    samples = config["eval_dataset"]["samples"]
    train_data, eval_data = heldout.split_train_eval(dataset, eval_dataset, samples, batch_format)
    torch.manual_seed(int(run["seed"]))  # same seed, same initial weights, in any process
    model = instantiate(model_cls, run["size_param"], run["size"], config["model"]["kwargs"], device="cpu")
    return {
        "run": planning.run_identity(run),
        "model": model,
        "train_data": train_data,
        "eval_data": eval_data,
        "loss_fn": loss_fn,
        "settings": training_settings(config, run),
        "batch_format": batch_format,
    }


def training_settings(config: dict, run: dict) -> dict:
    """The ``training`` config of one run.

    * An lr-calibration run is never retried at a lower lr (its divergence is what the calibration
      measures, and a retry's loss would be credited to the planned lr).
    * ``sweep.reuse: branches`` trains every run with the ``wsd`` schedule (a cooldown is the decay of
      a WSD run), and a branched run is never retried either: a retry restarts from the initial
      weights at a lower lr, which is no longer a cooldown of its stable run.
    """
    settings = config["training"]
    if config["sweep"].get("reuse", "none") == "branches":
        settings = {**settings, "schedule": {**settings["schedule"], "kind": "wsd"}}
    if run.get("role") == "calibration" or run.get("branch_of"):
        settings = {**settings, "divergence": {**settings["divergence"], "retries": 0}}
    return settings


def train_run(
    config: dict, run: dict, objects: tuple, run_dir: str | Path, checkpoint_dir: str | Path,
    threads: int | None = None, log: logging.Logger | None = None, branch_dir: str | Path | None = None,
) -> dict:
    """Train one planned run into ``run_dir`` (metrics.json, curve.tsv); ``objects`` are the built
    (model class, dataset, eval dataset, loss) of :func:`flops_fit.validation.build_objects`. ``threads``
    (the train rule's) overrides ``training.threads`` (find_optimal's); None in both: torch's default. A branched
    run starts from the branch checkpoint in ``branch_dir`` (:attr:`flops_fit.paths.Results.branch_dir`)."""
    from flops_fit.training import run_training

    if run.get("branch_of") and branch_dir is None:
        raise ValueError(f"run {run['run_id']} is a cooldown of stable run {run['branch_of']}: give its branch checkpoint")
    job = training_job(config, run, *objects)
    settings = job.pop("settings")
    settings = {**settings, "threads": threads if threads is not None else settings.get("threads")}
    branch = {"branch_from": Path(branch_dir), "branch_identity": planning.stable_identity(run)} if run.get("branch_of") else {}
    return run_training(**job, settings=settings, out_dir=Path(run_dir), checkpoint_dir=Path(checkpoint_dir), log=log,
                        **branch)


def train_step(
    config_path: str | Path, runs_path: str | Path, run_id: str, run_dir: str | Path, checkpoint_dir: str | Path,
    threads: int | None = None, log: logging.Logger | None = None, branch_dir: str | Path | None = None,
) -> dict:
    """The train rule (``flops-fit train``): one run of a plan table, its objects built as validation built them."""
    config = read_validated(config_path)
    run = planning.run_row(planning.read_runs_table(runs_path), run_id)
    return train_run(config, run, build_objects(config), run_dir, checkpoint_dir, threads, log, branch_dir)


# ------------------------------------------------------------------------------------------- stable
def train_stable_segment(
    config: dict, segment: planning.Segment, objects: tuple, start_from: str | Path | None, out_dir: str | Path,
    checkpoint_dir: str | Path, threads: int | None = None, log: logging.Logger | None = None,
) -> Path:
    """Train one stable segment (``sweep.reuse: branches``) into the branch checkpoint in ``out_dir``:
    from ``start_from`` (the previous branch checkpoint) or, for the first segment, from the initial
    weights every run of this size and seed starts from (seeded as :func:`training_job` seeds them)."""
    from flops_fit.training import train_segment

    model_cls, dataset, eval_dataset, loss_fn = objects
    batch_format = BatchFormat.from_config(config)
    train_data, _ = heldout.split_train_eval(dataset, eval_dataset, config["eval_dataset"]["samples"], batch_format)
    identity = segment.identity
    torch.manual_seed(int(identity["seed"]))
    model = instantiate(model_cls, identity["size_param"], identity["size"], config["model"]["kwargs"], device="cpu")
    settings = training_settings(config, {})
    settings = {**settings, "threads": threads if threads is not None else settings.get("threads")}
    return train_segment(identity, start_from=None if start_from is None else Path(start_from), end_step=segment.end,
                         model=model, train_data=train_data, loss_fn=loss_fn, settings=settings, out_dir=Path(out_dir),
                         checkpoint_dir=Path(checkpoint_dir), log=log, batch_format=batch_format)


def find_segment(table: pd.DataFrame, stable_id: str, step: int) -> planning.Segment:
    """The segment of stable run ``stable_id`` that ends at ``step`` in ``table`` (a KeyError naming them if none)."""
    for segment in planning.stable_segments(table):
        if segment.stable_id == stable_id and segment.end == step:
            return segment
    raise KeyError(f"no run of the plan branches off stable run {stable_id!r} at step {step}")


def stable_step(
    config_path: str | Path, runs_path: str | Path, stable_id: str, step: int, start_from: str | Path | None,
    out_dir: str | Path, checkpoint_dir: str | Path, threads: int | None = None, log: logging.Logger | None = None,
) -> Path:
    """The stable rule (``flops-fit stable``): one stable segment of a plan table, to its branch checkpoint."""
    config = read_validated(config_path)
    segment = find_segment(planning.read_runs_table(runs_path), stable_id, int(step))
    if (segment.start == 0) != (start_from is None):
        raise ValueError(f"stable run {stable_id}: the segment to step {step} starts at step {segment.start}; "
                         f"got {'no' if start_from is None else 'a'} previous branch checkpoint")
    return train_stable_segment(config, segment, build_objects(config), start_from, out_dir, checkpoint_dir, threads, log)


# ---------------------------------------------------------------------------------------------- fit
def collect_results(
    table: pd.DataFrame, runs_dir: str | Path, chance: float | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The fit's input: one row per finished run (N, D, loss, C, budget); diverged runs, runs whose
    loss reached 0 (the fitter needs a positive loss) and runs that did not learn (their loss stayed
    within 2 % of its initial value or of ``chance``: :mod:`flops_fit.learning`) are left out with a
    warning; a run that did not learn is named with its likely cause."""
    rows, warnings, flat = [], [], {}
    if "role" in table.columns:  # replicates and calibration runs never enter the fit
        table = table[table["role"] == "sweep"]
    learned: list = []  # (size, params) of the runs that learned, for the causes of the flat ones
    for run in table.itertuples():
        metrics = json.loads(run_file(runs_dir, run.run_id).read_text())
        loss = metrics.get("eval_loss")
        reason = learning.no_learning(metrics, run_file(runs_dir, run.run_id).parent, chance)
        if reason:
            flat[run.run_id] = (run, reason)
            continue
        if metrics.get("status") != "ok" or loss is None or not math.isfinite(loss):
            warnings.append(
                f"{run.run_id} excluded from the fit: status {metrics.get('status')!r}"
                f" ({metrics.get('reason') or 'no finite eval loss'})"
            )
            continue
        if loss <= 0:  # a law of log-loss has no point here, and a task solved outright shows no scaling
            warnings.append(
                f"{run.run_id} excluded from the fit: its eval loss is {loss:g}, so the model solves the task at "
                "this size and budget and the loss cannot fall further; make the task harder or lower the budgets"
            )
            continue
        learned.append(run.params)
        rows.append({
            "run_id": run.run_id, "budget": run.budget, "size": run.size, "N": run.params,
            "D": metrics["tokens"], "C": metrics["flops"], "loss": loss,
        })
    for run_id, (run, reason) in flat.items():
        warnings.append(f"{run_id} excluded from the fit: status 'no_learning': {reason}; "
                        f"{_flat_cause(run, flat.values(), learned)}")
    return pd.DataFrame(rows), warnings


def _flat_cause(run: Any, flat: Any, learned: list) -> str:
    """The likely cause of a sweep run that did not learn, from which sizes learned and which did not."""
    size = f"{run.size_param}={run.size}" if hasattr(run, "size_param") else f"size {run.size}"
    same_size_flat = sum(1 for other, _ in flat if other.size == run.size)
    if learned and max(learned) > run.params >= 0 and all(p > run.params for p in learned):
        return (f"likely too small a model: {size} (N={run.params:.3g}) learned at no budget ({same_size_flat} flat "
                "run(s)) while every larger size did; drop it from model.sizes or widen the model")
    if learned and all(p < run.params for p in learned):
        return (f"likely its lr ({run.lr:.3g}) is too high for {size} (N={run.params:.3g}): the smaller sizes learned; "
                "lower sweep.lr or its exponent (or calibrate: sweep.lr_calibration)")
    if not learned:
        return ("no sweep run learned: the lr (sweep.lr) is likely far too high or too low for these models, or "
                "they are too small for the task; check the loss and data, and calibrate the lr")
    return (f"likely too small a model or an lr ({run.lr:.3g}) too high or too low for {size} at this budget "
            "(runs of nearby sizes learned)")


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


def sweep_budgets(config: dict, table: pd.DataFrame) -> list[float]:
    """The ladder's budgets and any a chosen wave (``sweep.precision``) placed beyond it."""
    placed = {float(b) for b in table.loc[table["role"] == "sweep", "budget"]} if len(table) else set()
    given = [float(b) for b in config["budgets"]]
    return sorted(set(given) | {b for b in placed if not any(math.isclose(b, g, rel_tol=1e-9) for g in given)})


def target_budgets(config: dict) -> list[float]:
    """``target_budgets``, and ``sweep.precision``'s budget when it is not among them."""
    targets = [float(c) for c in config["target_budgets"]]
    precision = config["sweep"].get("precision")
    if precision and not any(math.isclose(precision["budget"], c, rel_tol=1e-9) for c in targets):
        targets.append(float(precision["budget"]))
    return sorted(targets)


def fit_runs(config: dict, table: pd.DataFrame, runs_dir: str | Path,
             waves: list[dict] | None = None) -> tuple[ScalingFit, pd.DataFrame]:
    """Scaling laws from the finished sweep runs of ``table``: the fit (with ``waves``' design records in
    its ``design``) and the fitted table.

    The frontier and every D* use each size's FLOPs per token from ``table`` (:class:`FlopsCurve`), the
    FLOPs its budgets were spent in.

    ``fit.loss_floor`` is resolved here again (the validate rule checked it): the fit rule reads the
    config, not the validated summary, and resolving a reference costs a fraction of a second.
    """
    results, warnings = collect_results(table, runs_dir, chance_loss(config))
    _raise_if_too_few(table, results, warnings)
    fit = config["fit"]
    result = fit_table(
        results, budgets=sweep_budgets(config, table), target_budgets=target_budgets(config),
        bootstrap=fit["bootstrap"], seed=fit["seed"], degree=fit["degree"], huber_delta=fit["huber_delta"],
        noise_sd=replicate_noise(table, read_losses(table, runs_dir)),
        recommend_from=fit["recommend_from"], n_convention=N_CONVENTION, loss_floor=loss_floor(config),
        flops_per_token=FlopsCurve.from_runs(table),
    )
    noise = result.noise
    if noise.sd is not None:
        noise = replace(noise, source=f"{config['sweep']['seed_replicates']} extra seed(s) of the smallest budget's runs")
    trained, separate = planning.compute_cost(table)
    cost = Cost(trained_flops=trained, separate_runs_flops=separate,
                branched_runs=int((table.get("branch_of", pd.Series(dtype=str)).fillna("") != "").sum()),
                stable_runs=len({s.stable_id for s in planning.stable_segments(table)}))
    result = replace(result, noise=noise, cost=cost, warnings=tuple(warnings) + result.warnings,
                     data=data_record(table, result))
    return replace(result, design=sweep_design(config, table, result, waves)), results


def data_record(table: pd.DataFrame, fit: ScalingFit) -> dict | None:
    """``fit.json``'s ``data``: the training set's size in samples (recovered from the runs' epochs), the
    most epochs a sweep run saw, and the epochs of each target's recommended D* (D* / tokens per sample /
    samples), so that a reader of fit.json alone sees that a prediction assumes data the set does not
    hold. None when the runs table has no finite epochs (a stream, or an older table)."""
    if "epochs" not in table.columns:
        return None
    sized = table[pd.to_numeric(table["epochs"], errors="coerce") > 0]
    if not len(sized):
        return None
    row = sized.iloc[0]
    tokens_per_sample = int(row["tokens_per_sample"])
    samples = round(float(row["batch_size"]) * float(row["steps"]) / float(row["epochs"]))
    targets = []
    for p in fit.predictions:
        D = p.recommended.D if p.recommended is not None else p.D
        if D is not None and math.isfinite(D):
            targets.append({"C": p.C, "D": D, "epochs": D / tokens_per_sample / samples})
    sweep = sized[sized["role"] == "sweep"] if "role" in sized.columns else sized
    return {"train_samples": samples, "tokens_per_sample": tokens_per_sample,
            "max_run_epochs": float(sweep["epochs"].max()) if len(sweep) else None,
            "runs_repeating": int((sweep["epochs"] > 1).sum()), "targets": targets}


class TooFewRuns(ValueError):
    """The sweep left fewer runs than the fit needs; the message says which were left out and why."""


def _raise_if_too_few(table: pd.DataFrame, results: pd.DataFrame, warnings: list[str]) -> None:
    """:class:`TooFewRuns` saying why the fit has too few runs (which were left out, and why) and what to change.

    Without it the fitter's own check said only "3 row(s); the parametric fit needs at least 6 runs",
    after a sweep whose small runs had all stayed at chance: true, but it hid the cause."""
    if len(results) >= MIN_POINTS:
        return
    sweep = table[table["role"] == "sweep"] if "role" in table.columns else table
    flat = [w for w in warnings if "'no_learning'" in w]
    other = [w for w in warnings if "excluded from the fit" in w and w not in flat]
    raise TooFewRuns(
        f"only {len(results)} of {len(sweep)} sweep runs can be fitted; the fit needs at least {MIN_POINTS}. "
        + (f"{len(flat)} did not learn (their eval loss stayed at its initial value or at chance): "
           f"{'; '.join(flat)}. " if flat else "")
        + (f"{len(other)} failed: {'; '.join(other)}. " if other else "")
        + "Raise the budgets (or the learning rate, if too low) so that more sizes learn, or add sizes "
          "(model.sizes, sweep.sizes_per_budget)"
    )


def sweep_design(config: dict, table: pd.DataFrame, fit: ScalingFit, waves: list[dict] | None = None) -> dict | None:
    """``fit.json``'s ``design``: the precision asked for, the waves (their runs, the FLOPs placed after
    each, the interval of N* at the target each was chosen from) and :func:`design.outlook` at
    ``sweep.precision``'s budget, else at the largest target budget (None without either)."""
    recipe = Recipe.from_config(config)
    precision = recipe.precision
    targets = target_budgets(config)
    if precision is None and not targets:
        return None
    target = precision.budget if precision is not None else max(targets)
    sweep = table[table["role"].isin(["sweep", "replicate"])]
    placed = sorted({float(b) for b in sweep.loc[sweep["role"] == "sweep", "budget"]})
    outlook = design.outlook(
        fit, target, None if precision is None else precision.n_star, placed=placed,
        ladder=[float(b) for b in config["budgets"]], spent=placed_flops(table), cap=recipe.max_flops,
        sizes_per_budget=recipe.sizes_per_budget,
        sizes_per_wave=precision.sizes_per_wave if precision is not None else recipe.sizes_per_budget,
        loss_goal=None if precision is None else precision.loss, history=decided_widths(waves or []),
    ) if placed else None
    widths = {w["wave"]: (w.get("decision") or {}).get("width") for w in waves or []}
    rows = []
    for wave, runs in sweep.groupby("wave") if "wave" in sweep.columns else ():  # a table from before waves
        rows.append({"wave": int(wave), "runs": int(len(runs)), "flops": float(runs["achieved_flops"].sum()),
                     "flops_placed": float(sweep.loc[sweep["wave"] <= wave, "achieved_flops"].sum()),
                     # the interval this wave was chosen from: the fit of the waves before it
                     "width_before": widths.get(int(wave))})
    return {"precision": config["sweep"].get("precision"), "max_flops": recipe.max_flops, "target": target,
            "waves": rows, "outlook": outlook}


def fit_step(
    config: dict, runs_path: str | Path, runs_dir: str | Path, fit_json: str | Path, summary_tsv: str | Path,
    fitted_runs: str | Path, design_json: str | Path | None = None,
) -> ScalingFit:
    """The fit rule: scaling laws from the finished runs, to fit.json, summary.tsv and the fitted table;
    the plan's ``design_json`` (its waves' decisions) goes into the fit's design record."""
    waves = json.loads(Path(design_json).read_text())["waves"] if design_json else None
    result, results = fit_runs(config, planning.read_runs_table(runs_path), runs_dir, waves)
    write_tsv(results, fitted_runs)
    write_fit(result, fit_json, summary_tsv)
    return result


# ---------------------------------------------------------------------------------------- recommend
def recommend_step(
    config: dict, fit_json: str | Path, runs_path: str | Path, out_path: str | Path
) -> tuple[pd.DataFrame, list[str]]:
    """The recommend rule: build the configured model and data, recommend, write ``recommendations.tsv``."""
    model_cls, dataset, eval_dataset, _ = build_objects(config)
    tokens_per_sample = int(planning.read_runs_table(runs_path)["tokens_per_sample"].iloc[0])
    table, warnings = recommend.recommend_for(read_fit(fit_json), config, model_cls, dataset, tokens_per_sample,
                                              training_samples(config, dataset, eval_dataset))
    write_tsv(table, out_path)
    return table, warnings


# --------------------------------------------------------------------------------------------- plot
def plot_step(
    fit_json: str | Path, fitted_runs: str | Path, runs_path: str | Path, runs_dir: str | Path, out_dir: str | Path
) -> list[Path]:
    """The plot rule: every figure of :data:`flops_fit.plotting.suite.FIGURES` under ``out_dir``."""
    from flops_fit.plotting.suite import plot_all

    return plot_all(read_fit(fit_json), pd.read_csv(fitted_runs, sep="\t"), planning.read_runs_table(runs_path),
                    runs_dir, out_dir)


# ---------------------------------------------------------------------------------------- summarize
def summarize_step(
    fit_json: str | Path, recommendations_tsv: str | Path, runs_path: str | Path, runs_dir: str | Path,
    calibration_json: str | Path, page_path: str | Path, runs_out: str | Path, chance: float | None = None,
) -> None:
    """The summarize rule: the report's summary page and the runs table with each run's outcome
    (``chance``: ``fit.chance_loss``, so a run the fit left out at chance shows as ``no_learning`` here too)."""
    from flops_fit import report_page

    calibration = json.loads(Path(calibration_json).read_text())
    runs = planning.read_runs_table(runs_path)
    outcomes = report_page.run_outcomes(runs, runs_dir, chance)
    write_tsv(outcomes, runs_out)
    page = report_page.summary_page(read_fit(fit_json), recommend.read_recommendations(recommendations_tsv), outcomes,
                                    calibration, report_page.retried_runs(runs, runs_dir))
    write_text(page, page_path)


# ------------------------------------------------------------------------------------------- verify
def verify_plan_step(
    config: dict, budgets: list[float], sizes: int, fit_json: str | Path, recommendations_tsv: str | Path,
    law_json: str | Path, out_path: str | Path,
) -> tuple[pd.DataFrame, list[str]]:
    """The verify_plan checkpoint: ``sizes`` runs per verify budget (none, with the reason, when nothing is
    recommended; fewer where factors of N* share a knob value)."""
    why = verify.nothing_to_verify(read_fit(fit_json), budgets)
    if why:
        table, notes = planning.as_table([]), why
    else:
        model_cls, dataset, eval_dataset, _ = build_objects(config)
        ctx = plan_context(config, model_cls, dataset, eval_dataset)
        law = json.loads(Path(law_json).read_text())
        table, notes = verify.plan_verification(
            ctx.recipe, ctx.catalog, ctx.tokens_per_sample, ctx.fixed_batch, lr_function(config, ctx, law),
            recommend.read_recommendations(recommendations_tsv), budgets, sizes,
        )
        table = planning.with_epochs(table, dataset_samples(ctx.train_data))
    write_tsv(table, out_path)
    return table, notes


def verify_step(
    fit_json: str | Path, recommendations_tsv: str | Path, plan_path: str | Path, runs_dir: str | Path,
    budgets: list[float], table_path: str | Path, page_path: str | Path,
) -> list[str]:
    """The verify rule: the comparison table and its page from the finished verification runs."""
    return verify.write_verification(
        read_fit(fit_json), recommend.read_recommendations(recommendations_tsv), planning.read_runs_table(plan_path),
        runs_dir, budgets, table_path, page_path,
    )[1]
